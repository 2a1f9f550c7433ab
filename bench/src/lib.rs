//! See the tests/ directory.
