//! Leaving a shared-subscription group without losing what the broker already dealt us: the
//! bookkeeping behind a graceful stop of a clean-start member (`shared-subscription` and its
//! rumqttc variants). The example keeps the lesson — on SIGTERM, UNSUBSCRIBE first, handle what
//! is on its way, then DISCONNECT — and sends the packets itself; [`Drain`] only counts and says
//! when to ask the broker again and when it has nothing more.
//!
//! Why a clean-start member must drain at all: the broker deals messages to members as they are
//! published, so a busy member has a backlog on its way (in its Receive Maximum window and, on
//! Mosquitto, queued beyond it). With a clean start that backlog dies with the session; handled
//! before the DISCONNECT, nothing is lost (tests/shared_subscription.rs).
//!
//! How the member knows the broker has sent it everything: it asks, and waits for an answer that
//! no message overtook. After our UNSUBSCRIBE (Mosquitto handles a connection's packets in order)
//! the broker deals us nothing new, but messages already dealt to us may still be queued on its
//! side, beyond our Receive Maximum: each PUBACK we send releases more. So the question is an
//! UNSUBSCRIBE of the same filter (harmless: "no subscription existed"), sent only when every
//! message received so far is acked, and the answer is its UNSUBACK: the broker writes a
//! connection's packets in order, so a message released by our PUBACKs arrives before the
//! UNSUBACK of a question sent after them. An answer with no message before it means "nothing
//! more". Two such answers in a row are required, because Mosquitto may write the messages a
//! PUBACK released on its next loop turn, after answering a question read in the same batch; a
//! second question, sent after the first answer, cannot overtake them. No idle timer: a loaded
//! machine only makes it slower (an earlier 0.5 s idle gap lost messages when a gap was longer;
//! issue #16). The caller still bounds the whole drain with a deadline ([`Drain::leave`]).

use std::time::Instant;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{ConnectionError, Event};
use rumqttc::Outgoing;

/// The drain's bookkeeping for one connection: PUBLISHes received, PUBACKs written, and — once
/// the member is leaving — the questions asked and answered. Feed it every event
/// ([`Drain::observe`]); send an UNSUBSCRIBE of the group's filter whenever it says so.
#[derive(Debug, Default)]
pub struct Drain {
    /// PUBLISH packets received on this connection.
    received: u64,
    /// PUBACK packets written on this connection.
    acked: u64,
    /// `Some` from the first UNSUBSCRIBE on: the member is leaving the group.
    leaving: Option<Leaving>,
}

/// The state of a leave in progress.
#[derive(Debug)]
struct Leaving {
    /// Give up here (a stuck handler, a wedged connection).
    limit: Instant,
    /// A question is on its way.
    waiting: bool,
    /// The question was asked with every received message acked...
    clean: bool,
    /// ...and this many received: a different count at the answer means a message came first.
    received_at_question: u64,
    /// Consecutive clean answers with no message before them.
    quiet_answers: u32,
}

/// What to do after an event ([`Drain::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Two quiet answers in a row: the broker has nothing more for us. Stop and DISCONNECT.
    Done,
    /// Every message is acked and no question is on its way: send another UNSUBSCRIBE now.
    AskAgain,
    /// Nothing to send: not leaving, or messages are still being handled (the PUBACK that acks
    /// them all asks again).
    Continue,
}

impl Drain {
    /// A member that is not leaving yet.
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Feed it every result of the event loop's `poll()` (or the blocking `Connection`'s
    /// `recv()`): it counts PUBLISHes and PUBACKs, starts over at a CONNACK, and while leaving
    /// says when to send the next UNSUBSCRIBE and when the broker has nothing more for us.
    pub fn observe(&mut self, event: &Result<Event, ConnectionError>) -> Step {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => self.connected(),
            Ok(Event::Incoming(Packet::Publish(_))) => self.received(),
            Ok(Event::Outgoing(Outgoing::PubAck(_))) => return self.acked(),
            Ok(Event::Incoming(Packet::UnsubAck(_))) => return self.answered(),
            _ => {}
        }
        Step::Continue
    }

    /// A CONNACK: a new connection (packet ids and acks of the old one mean nothing here).
    fn connected(&mut self) {
        self.received = 0;
        self.acked = 0;
    }

    /// A PUBLISH arrived.
    fn received(&mut self) {
        self.received += 1;
    }

    /// A PUBACK was written. [`Step::AskAgain`] when the member is leaving, everything received
    /// is acked, and no question is on its way.
    fn acked(&mut self) -> Step {
        self.acked += 1;
        let all_acked = self.received == self.acked;
        match &mut self.leaving {
            Some(leaving) if all_acked && !leaving.waiting => {
                leaving.asked(self.received, self.acked);
                Step::AskAgain
            }
            _ => Step::Continue,
        }
    }

    /// The member just sent its first UNSUBSCRIBE (it leaves the group); the drain gives up at
    /// `limit`. The UNSUBSCRIBE is the first question; it counts only if nothing was unacked.
    pub fn leave(&mut self, limit: Instant) {
        let mut leaving = Leaving {
            limit,
            waiting: false,
            clean: false,
            received_at_question: 0,
            quiet_answers: 0,
        };
        leaving.asked(self.received, self.acked);
        self.leaving = Some(leaving);
    }

    /// Whether [`Drain::leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving.is_some()
    }

    /// When the drain gives up (`None`: not leaving).
    pub fn deadline(&self) -> Option<Instant> {
        self.leaving.as_ref().map(|leaving| leaving.limit)
    }

    /// An UNSUBACK arrived: the answer to the last question.
    fn answered(&mut self) -> Step {
        let (received, acked) = (self.received, self.acked);
        let Some(leaving) = self.leaving.as_mut() else {
            return Step::Continue; // not leaving: nothing was asked
        };
        leaving.waiting = false;
        if leaving.clean && received == leaving.received_at_question {
            leaving.quiet_answers += 1;
        } else {
            leaving.quiet_answers = 0;
        }
        if leaving.quiet_answers >= 2 {
            Step::Done
        } else if received == acked {
            leaving.asked(received, acked);
            Step::AskAgain
        } else {
            Step::Continue
        }
    }
}

impl Leaving {
    /// A question (UNSUBSCRIBE) is sent now.
    fn asked(&mut self, received: u64, acked: u64) {
        self.waiting = true;
        self.clean = received == acked;
        self.received_at_question = received;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaving() -> Drain {
        let mut drain = Drain::new();
        drain.leave(Instant::now());
        drain
    }

    #[test]
    fn two_quiet_answers_in_a_row_end_the_drain() {
        let mut drain = leaving();
        assert_eq!(drain.answered(), Step::AskAgain);
        assert_eq!(drain.answered(), Step::Done);
    }

    #[test]
    fn a_message_before_the_answer_restarts_the_count() {
        let mut drain = leaving();
        assert_eq!(drain.answered(), Step::AskAgain); // one quiet answer
        drain.received(); // a message overtook the second question's answer
        assert_eq!(drain.answered(), Step::Continue); // not quiet, and it is not acked yet
        assert_eq!(drain.acked(), Step::AskAgain, "acked everything: ask again");
        assert_eq!(drain.answered(), Step::AskAgain);
        assert_eq!(drain.answered(), Step::Done);
    }

    #[test]
    fn a_question_asked_with_unacked_messages_does_not_count() {
        let mut drain = Drain::new();
        drain.received();
        drain.leave(Instant::now()); // one message still unacked
        assert_eq!(drain.answered(), Step::Continue);
        assert_eq!(drain.acked(), Step::AskAgain);
        assert_eq!(drain.answered(), Step::AskAgain);
        assert_eq!(drain.answered(), Step::Done);
    }

    #[test]
    fn no_question_while_one_is_on_its_way_or_before_leaving() {
        let mut drain = Drain::new();
        drain.received();
        assert_eq!(drain.acked(), Step::Continue, "not leaving: never ask");
        drain.leave(Instant::now());
        drain.received();
        assert_eq!(
            drain.acked(),
            Step::Continue,
            "a question is already on its way"
        );
        // A message came before the answer: not quiet, so two more quiet answers are needed.
        assert_eq!(drain.answered(), Step::AskAgain);
        assert_eq!(drain.answered(), Step::AskAgain);
        assert_eq!(drain.answered(), Step::Done);
    }

    #[test]
    fn an_answer_when_not_leaving_changes_nothing() {
        let mut drain = Drain::new();
        assert_eq!(drain.answered(), Step::Continue);
        assert!(!drain.is_leaving());
        assert_eq!(drain.deadline(), None);
    }
}
