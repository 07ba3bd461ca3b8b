//! # Resource definitions for model weights, vocabularies and configuration files
//!
//! This crate relies on the concept of Resources to access the data used by the models.
//! This includes:
//! - model weights
//! - configuration files
//! - vocabularies
//! - (optional) merges files for BPE-based tokenizers
//!
//! These are expected in the pipelines configurations or are used as utilities to reference to the
//! resource location. Two types of resources are pre-defined:
//! - LocalResource: points to a local file
//! - RemoteResource: points to a remote file via a URL
//! - BufferResource: refers to a buffer that contains file contents for a resource (currently only
//!                   usable for weights)
//!
//! For `LocalResource` and `RemoteResource`, the local location of the file can be retrieved using
//! `get_local_path`, allowing to reference the resource file location regardless if it is a remote
//! or local resource. Default implementations for a number of `RemoteResources` are available as
//! pre-trained models in each model module.

mod buffer;
mod local;

use crate::common::error::RustBertError;
pub use buffer::BufferResource;
pub use local::LocalResource;
use std::fmt::Debug;
use std::ops::DerefMut;
use std::path::PathBuf;
use std::sync::RwLockWriteGuard;
use safetensors::tensor::Metadata;
use std::convert::TryFrom;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, TchError, Tensor};

pub enum Resource<'a> {
    PathBuf(PathBuf),
    Buffer(RwLockWriteGuard<'a, Vec<u8>>),
}

/// # Resource Trait that can provide the location or data for the model, and location of
/// configuration or vocabulary resources
pub trait ResourceProvider: Debug + Send + Sync {
    /// Provides the local path for a resource.
    ///
    /// # Returns
    ///
    /// * `PathBuf` pointing to the resource file
    ///
    /// # Example
    ///
    /// ```no_run
    /// use rust_bert::resources::{LocalResource, ResourceProvider};
    /// use std::path::PathBuf;
    /// let config_resource = LocalResource {
    ///     local_path: PathBuf::from("path/to/config.json"),
    /// };
    /// let config_path = config_resource.get_local_path();
    /// ```
    fn get_local_path(&self) -> Result<PathBuf, RustBertError>;

    /// Provides access to an underlying resource.
    ///
    /// # Returns
    ///
    /// * `Resource` wrapping a representation of a resource.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use rust_bert::resources::{BufferResource, LocalResource, ResourceProvider};
    /// ```
    fn get_resource(&self) -> Result<Resource, RustBertError>;
}

impl<T: ResourceProvider + ?Sized> ResourceProvider for Box<T> {
    fn get_local_path(&self) -> Result<PathBuf, RustBertError> {
        T::get_local_path(self)
    }
    fn get_resource(&self) -> Result<Resource, RustBertError> {
        T::get_resource(self)
    }
}

/// Load the provided `VarStore` with model weights from the provided `ResourceProvider`
pub fn load_weights(
    rp: &(impl ResourceProvider + ?Sized),
    vs: &mut VarStore,
    kind: Option<Kind>,
    device: Device,
) -> Result<(), RustBertError> {
    match rp.get_resource()? {
        Resource::Buffer(mut data) => vs.load_from_stream(std::io::Cursor::new(data.deref_mut())),
        Resource::PathBuf(path) => load_var_store(vs, &path),
    }?;
    cast_var_store(vs, kind, device);
    Ok(())
}

/// gist patch (PATCH.md): `VarStore::load`, except that a `.safetensors` file is read one
/// tensor at a time (`load_safetensors`). Every pipeline loads its weights through here.
pub(crate) fn load_var_store(vs: &mut VarStore, path: &Path) -> Result<(), TchError> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        load_safetensors(vs, path)
    } else {
        vs.load(path)
    }
}

/// gist patch (PATCH.md): fills the variables of `vs` from a `.safetensors` file one tensor
/// at a time. tch's `VarStore::load` reads the whole file into memory, makes a tensor of
/// every entry, and only then copies them into the variables, so three copies of the
/// weights were resident at once; here it is the variables and the one tensor being read.
/// As in tch, every variable must be in the file, and takes the file's precision.
fn load_safetensors(vs: &VarStore, path: &Path) -> Result<(), TchError> {
    let shown = path.display().to_string();
    let invalid = |what: String| TchError::FileFormat(format!("{shown}: {what}"));
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut header_len = [0u8; 8];
    file.read_exact(&mut header_len)?;
    let header_len = u64::from_le_bytes(header_len);
    if header_len > 100_000_000 || 8 + header_len > file_len {
        return Err(invalid(format!(
            "a header of {header_len} bytes in a file of {file_len}"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| invalid(format!("header: {e}")))?;
    let entries = metadata.tensors();
    let data_start = 8 + header_len;
    let mut variables = vs.variables_.lock().unwrap();
    for (name, var) in variables.named_variables.iter_mut() {
        let info = entries
            .get(name)
            .ok_or_else(|| TchError::TensorNameNotFound(name.clone(), shown.clone()))?;
        let kind = Kind::try_from(info.dtype)?;
        let (begin, end) = info.data_offsets;
        let bytes = info.shape.iter().product::<usize>() * kind.elt_size_in_bytes();
        if end < begin || end - begin != bytes || data_start + end as u64 > file_len {
            return Err(invalid(format!(
                "{name}: bytes {begin}..{end} do not hold {:?} {:?} within the file",
                info.dtype, info.shape
            )));
        }
        let mut data = vec![0u8; bytes];
        file.seek(SeekFrom::Start(data_start + begin as u64))?;
        file.read_exact(&mut data)?;
        let size: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        let source = Tensor::f_from_data_size(&data, &size, kind)?;
        drop(data);
        tch::no_grad(|| {
            var.set_data(&var.to_kind(kind));
            var.f_copy_(&source)
        })
        .map_err(|e| e.path_context(name))?;
    }
    Ok(())
}

#[cfg(feature = "remote")]
mod remote;
use crate::pipelines::common::cast_var_store;
#[cfg(feature = "remote")]
pub use remote::RemoteResource;
