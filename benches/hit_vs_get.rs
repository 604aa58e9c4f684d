//! Placeholder: the benchmark described in the README is not written yet.

fn main() {}
