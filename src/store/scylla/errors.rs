//! The driver's errors as [`StoreError`]s: each keeps its source and says
//! whether the same call may succeed later (see [`StoreError::is_transient`]).

use scylla::errors::{
    DbError, ExecutionError, NewSessionError, NextPageError, NextRowError, PagerExecutionError,
    PrepareError, RequestAttemptError, RequestError, UseKeyspaceError,
};

use crate::store::StoreError;

/// A failed request, classified, with what we were doing.
pub(super) fn backend(what: &'static str) -> impl Fn(ExecutionError) -> StoreError {
    move |e| execution(what, e)
}

pub(super) fn execution(what: impl Into<String>, e: ExecutionError) -> StoreError {
    classified(what, execution_is_transient(&e), e)
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A failed connect: unreachable nodes are transient, a bad configuration is not.
pub(super) fn connect(what: String, e: NewSessionError) -> StoreError {
    let transient = match &e {
        NewSessionError::FailedToResolveAnyHostname(_) | NewSessionError::MetadataError(_) => true,
        NewSessionError::UseKeyspaceError(UseKeyspaceError::RequestError(a)) => {
            attempt_is_transient(a)
        }
        _ => false,
    };
    classified(what, transient, e)
}

pub(super) fn prepare(what: String, e: PrepareError) -> StoreError {
    classified(what, prepare_is_transient(&e), e)
}

/// Starting a paged read failed.
pub(super) fn pager(what: &'static str, e: PagerExecutionError) -> StoreError {
    let transient = match &e {
        PagerExecutionError::PrepareError(p) => prepare_is_transient(p),
        PagerExecutionError::NextPageError(p) => next_page_is_transient(p),
        _ => false,
    };
    classified(what, transient, e)
}

/// Fetching or decoding a later page failed.
pub(super) fn pager_next(what: &'static str, e: NextRowError) -> StoreError {
    let transient = matches!(&e, NextRowError::NextPageError(p) if next_page_is_transient(p));
    classified(what, transient, e)
}

fn classified(
    what: impl Into<String>,
    transient: bool,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    if transient {
        StoreError::transient(what, e)
    } else {
        StoreError::permanent(what, e)
    }
}

/// The server's refusal of a paging state we were handed is the caller's bad cursor.
pub(super) fn is_bad_paging_state(e: &ExecutionError) -> bool {
    matches!(
        e,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::ProtocolError | DbError::Invalid,
            _
        ))
    )
}

fn execution_is_transient(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::RequestTimeout(_)
        | ExecutionError::ConnectionPoolError(_)
        | ExecutionError::SchemaAgreementError(_)
        | ExecutionError::MetadataError(_) => true,
        ExecutionError::LastAttemptError(a) => attempt_is_transient(a),
        ExecutionError::PrepareError(p) => prepare_is_transient(p),
        ExecutionError::UseKeyspaceError(UseKeyspaceError::RequestError(a)) => {
            attempt_is_transient(a)
        }
        // BadQuery (values that do not serialize), an empty load-balancing plan.
        _ => false,
    }
}

fn next_page_is_transient(e: &NextPageError) -> bool {
    match e {
        NextPageError::RequestFailure(
            RequestError::RequestTimeout(_) | RequestError::ConnectionPoolError(_),
        ) => true,
        NextPageError::RequestFailure(RequestError::LastAttemptError(a)) => attempt_is_transient(a),
        _ => false,
    }
}

fn prepare_is_transient(e: &PrepareError) -> bool {
    match e {
        PrepareError::ConnectionPoolError(_) => true,
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_is_transient(first_attempt),
        _ => false,
    }
}

fn attempt_is_transient(e: &RequestAttemptError) -> bool {
    match e {
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => true,
        RequestAttemptError::DbError(db, _) => db_is_transient(db),
        // Serialization and protocol parse failures repeat on every try.
        _ => false,
    }
}

/// Nodes down, slow, overloaded or starting: later may work. A statement the
/// server refuses (syntax, invalid, unauthorized, schema) never will.
fn db_is_transient(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. }
            | DbError::TruncateError
            | DbError::ServerError
            | DbError::RateLimitReached { .. }
            | DbError::Unprepared { .. }
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scylla::errors::BadQuery;

    use super::*;

    fn db(e: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "msg".into()))
    }

    #[test]
    fn overload_and_timeouts_are_transient_refusals_are_not() {
        let of = |e| backend("test")(e).is_transient();
        assert!(of(ExecutionError::RequestTimeout(Duration::from_secs(1))));
        assert!(of(db(DbError::Overloaded)));
        assert!(of(db(DbError::IsBootstrapping)));
        assert!(!of(db(DbError::Invalid)));
        assert!(!of(db(DbError::SyntaxError)));
        assert!(!of(db(DbError::Unauthorized)));
        assert!(!of(ExecutionError::BadQuery(
            BadQuery::PartitionKeyExtraction
        )));
        assert!(!corrupt("x").is_transient());
    }

    #[test]
    fn the_source_is_kept() {
        let e = backend("reading link")(db(DbError::Overloaded));
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert!(source.is_some_and(|s| s.contains("msg")), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("store backend error: reading link: ")
        );
    }
}
