//! The build script of every crate that embeds migrations (`build = ` in its Cargo.toml).
//! `sqlx::migrate!` reads `./migrations` at compile time but cannot tell Cargo to watch the
//! directory, so a migration added without a source change was left out of incremental builds
//! (sqlx documents this gap): a release build then ran without the new index. Watching the
//! directory (relative to the crate) rebuilds the crate whenever a migration is added or edited.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
