//! The WIT contract is read by a macro, which cargo does not track: rebuild when it changes.
fn main() {
    println!("cargo:rerun-if-changed=../../wit");
}
