//! Browser end-to-end tests (headless Chromium).
