//! Link flags of the `cas` binary.
fn main() {
    // Pack the ~30,000 relative relocations of a position-independent
    // executable (DT_RELR, glibc ≥ 2.36, binutils ≥ 2.38): the dynamic
    // loader applies them from a table ~50× smaller at every start.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
