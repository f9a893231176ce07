//! The WeCom conversation archive (会话存档): messages as the finance SDK hands them over, read from JSONL
//! files, and grouped into the sessions that every later stage analyses.
//!
//! Parsing is lenient where WeCom is (unknown msgtypes are kept raw) and strict where analysis needs it
//! (a line without `msgid` or `msgtime` is rejected with its file and line, never guessed at).

mod message;
mod reader;
mod session;

pub use message::{Action, Event, Message, Role};
pub use reader::{read_files, ArchiveReader, RejectedLine};
pub use session::{conversation_key, sessionize, Session, SessionKind};
