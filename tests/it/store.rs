//! Black-box tests of `cas store ...`.
