//! Core work run off the JS thread as an `AsyncTask`, resolving to a JS value or rejecting with
//! the mapped error. Panics are caught and reported as `ERR_INTERNAL`: none crosses the FFI.

use std::panic::{AssertUnwindSafe, catch_unwind};

use napi::bindgen_prelude::*;

use super::errors::to_js;
use crate::error::{ChordError, ErrorCode};

type Work<T> = Box<dyn FnOnce() -> crate::Result<T> + Send>;
type OnJsThread = Box<dyn FnOnce(&Env) + Send>;

/// A unit of core work producing `T`.
pub struct Job<T> {
    work: Option<Work<T>>,
    /// Run on the JS thread when the work is done, before the promise settles.
    then: Option<OnJsThread>,
}

impl<T> Job<T> {
    /// Wraps `work`.
    pub fn new(work: impl FnOnce() -> crate::Result<T> + Send + 'static) -> Job<T> {
        Job { work: Some(Box::new(work)), then: None }
    }

    /// Wraps `work` as an `AsyncTask` that runs `then` on the JS thread once `work` is done
    /// (whatever its outcome), before the promise settles.
    pub fn task_then(work: impl FnOnce() -> crate::Result<T> + Send + 'static, then: impl FnOnce(&Env) + Send + 'static) -> AsyncTask<Job<T>>
    where
        Job<T>: Task,
    {
        AsyncTask::new(Job { work: Some(Box::new(work)), then: Some(Box::new(then)) })
    }

    /// Wraps `work` as an `AsyncTask`.
    pub fn task(work: impl FnOnce() -> crate::Result<T> + Send + 'static) -> AsyncTask<Job<T>>
    where
        Job<T>: Task,
    {
        AsyncTask::new(Self::new(work))
    }
}

impl<T: ToNapiValue + TypeName + Send + 'static> Task for Job<T> {
    type Output = crate::Result<T>;
    type JsValue = T;

    fn compute(&mut self) -> Result<Self::Output> {
        let Some(work) = self.work.take() else {
            return Ok(Err(ChordError::new(ErrorCode::Internal, "job ran twice")));
        };
        Ok(catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|p| {
            let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(ChordError::new(ErrorCode::Internal, format!("internal panic: {what}")))
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<T> {
        if let Some(then) = self.then.take() {
            then(&env);
        }
        output.map_err(|e| to_js(&env, e))
    }
}
