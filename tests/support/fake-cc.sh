#!/bin/sh
# A C compiler and archiver that compile nothing, for `cargo clippy --target x86_64-apple-darwin`
# on Linux (README, "Portability"): a check builds no binary, so the C code of bundled SQLite
# needs no macOS SDK. Writes every output named by `-o FILE` or `FILE.a` empty, and succeeds.
prev=
for a in "$@"; do
    [ "$prev" = "-o" ] && : >"$a"
    case "$a" in
        *.a) : >"$a" ;;
    esac
    prev=$a
done
exit 0
