//! The lessons' computations by name, for the page's one `teach` request: each name
//! takes its arguments as JSON and answers JSON, so a lesson adds a line here and none
//! in the wasm layer or the engine. The computations themselves live in
//! [`crate::teach`] (native and tested); this file only routes.

use super::Session;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Arguments of a lesson request as `T` (a missing field takes its default).
fn args<T: DeserializeOwned>(what: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Config(format!("lesson request {what}: {e}")))
}

/// Any serialisable result as JSON.
fn answer<T: serde::Serialize>(what: &str, v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Config(format!("lesson request {what}: {e}")))
}

/// `{seed}` and a size, the arguments most lessons take.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Seeded {
    seed: u64,
}

impl Session {
    /// Runs the lesson computation `what` with `args`; an unknown name is an error that
    /// lists the known ones.
    pub fn teach(&mut self, what: &str, a: Value) -> Result<Value> {
        match what {
            "evaluate" => {
                let s: Seeded = args(what, a)?;
                let r = self.evaluate(super::EVAL_SAMPLES, s.seed)?;
                answer(what, &r)
            }
            _ => Err(Error::Config(format!(
                "no lesson computation is called {what:?}; known: {}",
                KNOWN.join(", ")
            ))),
        }
    }
}

/// The names [`Session::teach`] answers.
const KNOWN: &[&str] = &["evaluate"];
