//! Pure text functions: sentence segmentation, offset mapping, entity merging, key-point
//! ranking, long-input chunking and the mention search of the faithfulness check. Nothing
//! here touches a model or the network, so all of it is table-tested with tricky inputs.

pub mod chunks;
pub mod entities;
pub mod groups;
pub mod mentions;
pub mod offsets;
pub mod rank;
pub mod sentences;
pub mod windows;
pub mod words;
