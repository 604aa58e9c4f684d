//! No library: this crate's tests use cached async functions the way a web server does.
