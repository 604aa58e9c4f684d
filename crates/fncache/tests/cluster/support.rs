//! The shared front-end driver (`tests/common/front.rs`), as the cluster modules name it.

pub use crate::front::{Front, runtime, unique_name};
