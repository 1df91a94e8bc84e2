//! Unit tests of the runner, by topic; the fake streams and mappings they share are in
//! [`helpers`].

mod delivery;
mod helpers;
mod polling;
mod reads;
mod records;
mod settings;
