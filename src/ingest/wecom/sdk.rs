//! WeCom's finance SDK (`libWeWorkFinanceSdk_C.so`), loaded at run time through its documented C
//! functions. The customer downloads the library from WeCom; nothing of it is shipped or needed to
//! build. Every call blocks (the SDK does its own HTTPS), so callers run them on a blocking thread.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CString};
use std::path::Path;

use libloading::{Library, Symbol};

/// An SDK call that failed, with WeCom's error code (`-1` for what happened before any call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WeCom finance SDK {call}: error {code} ({})", describe(*code))]
pub struct SdkError {
    pub call: &'static str,
    pub code: i32,
}

impl SdkError {
    /// 10001 network error, 10002 data parse failure, 10003 system failure: the SDK's documented
    /// transient errors, worth a retry after a pause. Everything else (wrong secret, IP not allowed,
    /// a bad argument) needs a person.
    pub fn retryable(&self) -> bool {
        matches!(self.code, 10001..=10003)
    }
}

/// The meaning of the SDK's documented error codes (WeWorkFinanceSdk_C.h).
pub fn describe(code: i32) -> &'static str {
    match code {
        10000 => "bad request parameters",
        10001 => "network error, retry",
        10002 => "data parse failure",
        10003 => "system failure",
        10004 => "secret does not match the corp",
        10005 => "fileid error",
        10006 => "decryption failure",
        10007 => "no key version, check the public key configured in the WeCom admin",
        10008 => "encrypt_key error",
        10009 => "IP not allowed",
        10010 => "data expired",
        10011 => "certificate error",
        -1 => "the library could not be used",
        _ => "undocumented error",
    }
}

#[repr(C)]
struct Slice {
    buf: *mut c_char,
    len: c_int,
}

#[repr(C)]
struct MediaData {
    outindexbuf: *mut c_char,
    out_len: c_int,
    data: *mut c_char,
    data_len: c_int,
    is_finish: c_int,
}

type NewSdk = unsafe extern "C" fn() -> *mut c_void;
type Init = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int;
type DestroySdk = unsafe extern "C" fn(*mut c_void);
type GetChatData = unsafe extern "C" fn(
    *mut c_void,
    c_ulonglong,
    c_uint,
    *const c_char,
    *const c_char,
    c_int,
    *mut Slice,
) -> c_int;
type DecryptData = unsafe extern "C" fn(*const c_char, *const c_char, *mut Slice) -> c_int;
type GetMediaData = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    c_int,
    *mut MediaData,
) -> c_int;
type NewSlice = unsafe extern "C" fn() -> *mut Slice;
type FreeSlice = unsafe extern "C" fn(*mut Slice);
type GetContentFromSlice = unsafe extern "C" fn(*mut Slice) -> *mut c_char;
type GetSliceLen = unsafe extern "C" fn(*mut Slice) -> c_int;
type NewMediaData = unsafe extern "C" fn() -> *mut MediaData;
type FreeMediaData = unsafe extern "C" fn(*mut MediaData);
type GetOutIndexBuf = unsafe extern "C" fn(*mut MediaData) -> *mut c_char;
type GetData = unsafe extern "C" fn(*mut MediaData) -> *mut c_char;
type GetIndexLen = unsafe extern "C" fn(*mut MediaData) -> c_int;
type GetDataLen = unsafe extern "C" fn(*mut MediaData) -> c_int;
type IsMediaDataFinish = unsafe extern "C" fn(*mut MediaData) -> c_int;

/// The functions huixi uses, resolved once when the library is loaded.
struct Functions {
    destroy: DestroySdk,
    get_chat_data: GetChatData,
    decrypt: DecryptData,
    get_media: GetMediaData,
    new_slice: NewSlice,
    free_slice: FreeSlice,
    slice_content: GetContentFromSlice,
    slice_len: GetSliceLen,
    new_media: NewMediaData,
    free_media: FreeMediaData,
    media_index: GetOutIndexBuf,
    media_data: GetData,
    media_index_len: GetIndexLen,
    media_data_len: GetDataLen,
    media_finished: IsMediaDataFinish,
}

/// One initialised SDK instance. WeCom advises one instance per thread: huixi uses one per tenant
/// puller, behind that puller's lock.
pub struct Sdk {
    handle: *mut c_void,
    f: Functions,
    // Last, so the library is unloaded after the instance is destroyed.
    _library: Library,
}

// The instance is used by one thread at a time (the puller holds it behind a mutex); the SDK's
// handle is not tied to the thread that created it.
unsafe impl Send for Sdk {}

/// A piece of a media file and where the next one starts.
pub struct MediaChunk {
    pub data: Vec<u8>,
    pub next_index: String,
    pub finished: bool,
}

/// The timeout, in seconds, of each SDK request (WeCom suggests 5).
const TIMEOUT_SECS: c_int = 5;

fn symbol<T: Copy>(library: &Library, name: &'static str) -> Result<T, String> {
    // SAFETY: each name is a function of WeWorkFinanceSdk_C.h and `T` is its signature there.
    unsafe {
        let s: Symbol<T> = library
            .get(name.as_bytes())
            .map_err(|e| format!("the library has no {name}: {e}"))?;
        Ok(*s)
    }
}

fn c_string(what: &str, s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} holds a NUL byte"))
}

impl Sdk {
    /// Loads the library at `path` and initialises an instance for the corp.
    pub fn open(path: &Path, corpid: &str, secret: &str) -> Result<Sdk, String> {
        // SAFETY: loading runs the library's initialisers; it is WeCom's SDK (or a stand-in with
        // the same functions), chosen by the operator.
        let library = unsafe { Library::new(path) }
            .map_err(|e| format!("cannot load the WeCom finance SDK {}: {e}", path.display()))?;
        let new: NewSdk = symbol(&library, "NewSdk")?;
        let init: Init = symbol(&library, "Init")?;
        let f = Functions {
            destroy: symbol(&library, "DestroySdk")?,
            get_chat_data: symbol(&library, "GetChatData")?,
            decrypt: symbol(&library, "DecryptData")?,
            get_media: symbol(&library, "GetMediaData")?,
            new_slice: symbol(&library, "NewSlice")?,
            free_slice: symbol(&library, "FreeSlice")?,
            slice_content: symbol(&library, "GetContentFromSlice")?,
            slice_len: symbol(&library, "GetSliceLen")?,
            new_media: symbol(&library, "NewMediaData")?,
            free_media: symbol(&library, "FreeMediaData")?,
            media_index: symbol(&library, "GetOutIndexBuf")?,
            media_data: symbol(&library, "GetData")?,
            media_index_len: symbol(&library, "GetIndexLen")?,
            media_data_len: symbol(&library, "GetDataLen")?,
            media_finished: symbol(&library, "IsMediaDataFinish")?,
        };
        let (corpid, secret) = (c_string("corpid", corpid)?, c_string("secret", secret)?);
        // SAFETY: the signatures are the header's; the strings outlive the call.
        let handle = unsafe { new() };
        if handle.is_null() {
            return Err("NewSdk returned no instance".into());
        }
        let code = unsafe { init(handle, corpid.as_ptr(), secret.as_ptr()) };
        let sdk = Sdk {
            handle,
            f,
            _library: library,
        };
        if code != 0 {
            return Err(SdkError { call: "Init", code }.to_string());
        }
        Ok(sdk)
    }

    /// Copies a slice's bytes out and frees it.
    ///
    /// SAFETY: `slice` came from this library's NewSlice and was filled by one of its calls.
    unsafe fn take_slice(&self, slice: *mut Slice) -> Vec<u8> {
        let content = (self.f.slice_content)(slice);
        let len = (self.f.slice_len)(slice);
        let out = if content.is_null() || len <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(content as *const u8, len as usize).to_vec()
        };
        (self.f.free_slice)(slice);
        out
    }

    /// The page of archive items after `seq`, at most `limit` (≤ 1,000): the SDK's JSON, as sent.
    pub fn chat_data(&self, seq: u64, limit: u32) -> Result<Vec<u8>, SdkError> {
        let empty = c"";
        // SAFETY: the signatures are the header's; the slice is freed by take_slice.
        unsafe {
            let slice = (self.f.new_slice)();
            let code = (self.f.get_chat_data)(
                self.handle,
                seq,
                limit.min(1000),
                empty.as_ptr(),
                empty.as_ptr(),
                TIMEOUT_SECS,
                slice,
            );
            let out = self.take_slice(slice);
            match code {
                0 => Ok(out),
                code => Err(SdkError {
                    call: "GetChatData",
                    code,
                }),
            }
        }
    }

    /// An item's message, decrypted with its random key (already decrypted with the tenant's RSA key).
    pub fn decrypt(&self, key: &str, message: &str) -> Result<Vec<u8>, SdkError> {
        let bad = SdkError {
            call: "DecryptData",
            code: 10000,
        };
        let key = CString::new(key).map_err(|_| bad.clone())?;
        let message = CString::new(message).map_err(|_| bad)?;
        // SAFETY: as above.
        unsafe {
            let slice = (self.f.new_slice)();
            let code = (self.f.decrypt)(key.as_ptr(), message.as_ptr(), slice);
            let out = self.take_slice(slice);
            match code {
                0 => Ok(out),
                code => Err(SdkError {
                    call: "DecryptData",
                    code,
                }),
            }
        }
    }

    /// One chunk of a media file, from `index` (empty for the first).
    pub fn media(&self, index: &str, sdkfileid: &str) -> Result<MediaChunk, SdkError> {
        let bad = SdkError {
            call: "GetMediaData",
            code: 10000,
        };
        let index = CString::new(index).map_err(|_| bad.clone())?;
        let fileid = CString::new(sdkfileid).map_err(|_| bad)?;
        let empty = c"";
        // SAFETY: as above; the media data is freed before returning.
        unsafe {
            let media = (self.f.new_media)();
            let code = (self.f.get_media)(
                self.handle,
                index.as_ptr(),
                fileid.as_ptr(),
                empty.as_ptr(),
                empty.as_ptr(),
                TIMEOUT_SECS,
                media,
            );
            let result = if code == 0 {
                let data = (self.f.media_data)(media);
                let data_len = (self.f.media_data_len)(media);
                let next = (self.f.media_index)(media);
                let next_len = (self.f.media_index_len)(media);
                let data = if data.is_null() || data_len <= 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(data as *const u8, data_len as usize).to_vec()
                };
                let next_index = if next.is_null() || next_len <= 0 {
                    String::new()
                } else {
                    let bytes = std::slice::from_raw_parts(next as *const u8, next_len as usize);
                    String::from_utf8_lossy(bytes).into_owned()
                };
                Ok(MediaChunk {
                    data,
                    next_index,
                    finished: (self.f.media_finished)(media) != 0,
                })
            } else {
                Err(SdkError {
                    call: "GetMediaData",
                    code,
                })
            };
            (self.f.free_media)(media);
            result
        }
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        // SAFETY: the handle came from NewSdk and is destroyed once.
        unsafe { (self.f.destroy)(self.handle) }
    }
}
