//! Pure text functions: sentence segmentation, offset mapping, entity merging and
//! key-point ranking. Nothing here touches a model or the network, so all of it is
//! table-tested with tricky inputs.

pub mod entities;
pub mod offsets;
pub mod rank;
pub mod sentences;
pub mod windows;
pub mod words;
