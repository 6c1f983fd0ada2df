//! Nothing to build: this crate carries the Debian package metadata
//! (`[package.metadata.deb]` in its Cargo.toml) for cargo-deb.
