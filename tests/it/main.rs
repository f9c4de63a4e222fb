//! fieldcast's integration tests: each test starts the real server on port
//! 0 with its own fresh database and talks to it over HTTP/websockets like a
//! phone would.

mod accounts;
mod authorization;
mod browser;
mod browser_gallery;
mod browser_live;
mod browser_media;
mod browser_pages;
mod cluster;
mod cluster_orders;
mod crash;
mod harness;
mod hostile_auth;
mod hostile_flood;
mod hostile_media;
mod hostile_orders;
mod hostile_web;
mod i18n;
mod interop;
mod interop_aiortc;
mod live;
mod loadgen;
mod media;
mod openapi;
mod ops;
mod orders;
mod photos;
mod recording;
mod replay;
