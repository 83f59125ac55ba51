//! Black-box tests of the element format and its diagnostics (`cas show`, `cas graph`).
