//! The persist-server binary.
fn main() {}
