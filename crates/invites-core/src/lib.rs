//! Core of the invites library.
#![allow(missing_docs)]
pub mod error;
pub mod ids;
pub mod principal;
pub mod random;
pub mod request;
pub mod response;
pub mod store;
pub mod time;
pub mod values;
pub use error::*;
pub use ids::*;
pub use principal::*;
pub use random::*;
pub use request::*;
pub use response::*;
pub use store::*;
pub use time::*;
pub use values::*;
pub mod mail;
pub mod service;
pub use mail::*;
pub use service::*;
