pub mod accounts;
pub mod broadcasts;
pub mod media;
pub mod ops;
pub mod orders;
pub mod pages;
pub mod products;
pub mod shops;
