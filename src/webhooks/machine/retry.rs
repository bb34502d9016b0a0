//! The retry API's steps: read the delivery, check that it failed, write it
//! back pending, take it in, answer.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Action, DeliveryMachine, RetryError};
use crate::domain::{Delivery, DeliveryStatus};

impl<R> DeliveryMachine<R> {
    pub(super) fn retry_asked(&mut self, event_id: Uuid, reply: R, out: &mut Vec<Action<R>>) {
        // Held deliveries are pending; a second request waits on the first.
        if self.held.contains(&event_id) || self.retrying.contains_key(&event_id) {
            out.push(Action::Answer(reply, Err(RetryError::NotFailed)));
        } else {
            self.retrying.insert(event_id, reply);
            out.push(Action::ReadForRetry(event_id));
        }
    }

    pub(super) fn retry_read(
        &mut self,
        event_id: Uuid,
        read: Result<Option<Delivery>, String>,
        now: DateTime<Utc>,
        out: &mut Vec<Action<R>>,
    ) {
        let Some(reply) = self.retrying.remove(&event_id) else {
            return;
        };
        let error = match read {
            Err(e) => RetryError::Store(e),
            Ok(None) => RetryError::NotFound,
            Ok(Some(d)) if d.status != DeliveryStatus::Failed || self.held.contains(&event_id) => {
                RetryError::NotFailed
            }
            Ok(Some(mut d)) => {
                d.due_again(now);
                self.retrying.insert(event_id, reply);
                out.push(Action::WriteForRetry(d));
                return;
            }
        };
        out.push(Action::Answer(reply, Err(error)));
    }

    pub(super) fn retry_written(
        &mut self,
        event_id: Uuid,
        written: Result<Delivery, String>,
        now: DateTime<Utc>,
        out: &mut Vec<Action<R>>,
    ) {
        if let Some(reply) = self.retrying.remove(&event_id) {
            let answer = written.map(|d| self.hold(d, now));
            out.push(Action::Answer(reply, answer.map_err(RetryError::Store)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Actions, SEC, arrive, delivery, id, rules, sent, started, t};
    use super::*;
    use crate::webhooks::machine::Input;

    /// A failed delivery as the outbox keeps it.
    fn failed_row(n: u128) -> Delivery {
        Delivery {
            attempts: 6,
            status: DeliveryStatus::Failed,
            ..delivery(n, t(0))
        }
    }

    #[test]
    fn the_retry_api_puts_a_failed_delivery_back() {
        let mut m = started(rules(), 100);
        let actions = m.handle(Input::RetryAsked(id(1), 7), t(SEC));
        assert!(matches!(actions[..], [Action::ReadForRetry(e)] if e == id(1)));
        let actions = m.handle(Input::RetryRead(id(1), Ok(Some(failed_row(1)))), t(SEC));
        let [Action::WriteForRetry(row)] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert_eq!(
            (row.status, row.next_attempt_at),
            (DeliveryStatus::Pending, t(SEC))
        );
        let actions = m.handle(Input::RetryWritten(id(1), Ok(row.clone())), t(SEC));
        assert!(
            matches!(actions[0], Action::Answer(7, Ok(()))),
            "{actions:?}"
        );
        assert_eq!(
            sent(&actions)
                .into_iter()
                .map(|(d, n)| (d.event_id, n))
                .collect::<Vec<_>>(),
            [(id(1), 7)]
        );
    }

    #[test]
    fn the_retry_api_refuses_what_it_cannot_retry() {
        let mut m = started(rules(), 100);
        let answer = |actions: Actions| match actions.into_iter().next() {
            Some(Action::Answer(_, answer)) => answer,
            other => panic!("no answer: {other:?}"),
        };
        let refusals = [
            (Ok(None), RetryError::NotFound),
            (Ok(Some(delivery(2, t(0)))), RetryError::NotFailed),
            (
                Err("store down".into()),
                RetryError::Store("store down".into()),
            ),
        ];
        for (n, (read, refusal)) in (1..).zip(refusals) {
            m.handle(Input::RetryAsked(id(n), 0), t(0));
            assert_eq!(
                answer(m.handle(Input::RetryRead(id(n), read), t(0))),
                Err(refusal)
            );
        }
        // Held in memory, or asked twice at once: not failed (yet).
        arrive(&mut m, vec![delivery(4, t(0))], t(0));
        assert_eq!(
            answer(m.handle(Input::RetryAsked(id(4), 4), t(0))),
            Err(RetryError::NotFailed)
        );
        m.handle(Input::RetryAsked(id(5), 5), t(0));
        assert_eq!(
            answer(m.handle(Input::RetryAsked(id(5), 6), t(0))),
            Err(RetryError::NotFailed)
        );
    }
}
