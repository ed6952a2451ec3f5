//! Builds the web client (`web/`, TypeScript + Vite) into `web/dist`, which `src/web.rs`
//! embeds in the binary. This is what makes `cargo run --release -- serve` serve the page on
//! a fresh clone with no separate npm step.
//!
//! It runs `npm ci` when `web/node_modules` is missing and `npm run build` when the web
//! sources change. Without npm it warns and the binary serves a placeholder page.
//! `CHATNODE_SKIP_WEB_BUILD=1` skips it (for Rust-only work, or where a prebuilt `web/dist`
//! is provided).

use std::path::Path;
use std::process::Command;

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    println!("cargo:rerun-if-env-changed=CHATNODE_SKIP_WEB_BUILD");
    for p in [
        "src",
        "public",
        "build",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(p).display());
    }
    if std::env::var_os("CHATNODE_SKIP_WEB_BUILD").is_some_and(|v| v != "0")
        || !web.join("package.json").exists()
    {
        return;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if !web.join("node_modules").exists() {
        // `npm ci` installs exactly package-lock.json, optional native packages included.
        if !run(Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web))
        {
            return;
        }
    }
    run(Command::new(npm).args(["run", "build"]).current_dir(&web));
}

fn run(cmd: &mut Command) -> bool {
    match cmd.status() {
        Ok(s) if s.success() => true,
        Ok(s) => {
            println!(
                "cargo:warning=web client build step failed ({s}); serving a placeholder page"
            );
            false
        }
        Err(e) => {
            println!(
                "cargo:warning=cannot run npm ({e}); the web client is not built into this binary"
            );
            false
        }
    }
}
