//! The stock ledger of one live offer: a plain struct that decides every tap
//! in order, with an explicit `now` and no I/O.
//!
//! The offer's writer task owns one ledger and is the only thing that changes
//! it, so no locks are involved; it persists what the ledger decided (see
//! `writer.rs`). Tests and benchmarks drive the ledger directly.
//!
//! The ledger checks itself: its arithmetic is checked (a count that would
//! wrap is a bug, reported, never hidden), what it keeps in memory is
//! bounded by [`LedgerLimits`], and after every change its invariants are
//! asserted in debug builds and tests (cheaply, from running totals;
//! [`StockLedger::check`] recounts everything).

use domain::{
    BuyerTally, Buyers, OfferState, OverLimit, ReservationId, StockCounts, StockError, Subject,
    UnitsReturn, UnixMillis,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

/// The rules of one offer that the ledger applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfferTerms {
    pub starts_at: Option<UnixMillis>,
    pub ends_at: Option<UnixMillis>,
    pub per_buyer_limit: u32,
    /// Who may buy.
    pub buyers: Buyers,
    /// How long a tap holds its units.
    pub hold: Duration,
}

/// One "buy now".
#[derive(Clone, Debug)]
pub struct Tap {
    /// The subject the units are held for: only it may confirm or cancel
    /// them.
    pub buyer: Subject,
    /// The person the buyer stands for: the key of the per-buyer limit, so
    /// the guests one browser started share one limit. The buyer itself
    /// when it is not linked to anyone.
    pub person: Subject,
    /// Signed in with a mobile account (not a guest).
    pub account: bool,
    pub quantity: u32,
}

impl Tap {
    /// A tap by a buyer who is their own person.
    pub fn by(buyer: Subject, quantity: u32) -> Tap {
        Tap {
            account: buyer.is_account(),
            person: buyer.clone(),
            buyer,
            quantity,
        }
    }
}

/// The ledger's answer to a tap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Held(Hold),
    Refused(Refusal),
}

/// Units now held for a buyer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub reservation: ReservationId,
    pub buyer: Subject,
    pub quantity: u32,
    pub expires_at: UnixMillis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    ZeroQuantity,
    Ended,
    /// The offer is for buyers with an account and this one is a guest.
    AccountRequired,
    NotStarted {
        starts_at: UnixMillis,
    },
    OverLimit(OverLimit),
    SoldOut {
        available: u32,
    },
    /// The ledger holds as much as [`LedgerLimits`] lets it: the tap may
    /// succeed once holds expire or are confirmed.
    Full(LedgerFull),
}

/// Which of the ledger's limits a tap ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerFull {
    /// As many reservations held at once as [`LedgerLimits::max_holds`].
    Holds,
    /// As many persons with units held or bought as
    /// [`LedgerLimits::max_buyers`].
    Buyers,
    /// As many expiry timers queued as [`LedgerLimits::max_timers`], even
    /// after dropping those of confirmed and cancelled holds.
    Timers,
}

/// How much one offer's ledger keeps in memory. Far above what a farmer's
/// live sale reaches (a hold is at least one unit, and a product has at most
/// [`domain::MAX_STOCK`]); past a limit a tap is refused with
/// [`Refusal::Full`] instead of the writer growing without bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerLimits {
    pub max_holds: usize,
    pub max_buyers: usize,
    /// At least `max_holds`: every hold has a timer, and timers of holds
    /// confirmed or cancelled stay queued until the heap is compacted.
    pub max_timers: usize,
}

impl Default for LedgerLimits {
    fn default() -> Self {
        LedgerLimits {
            max_holds: 100_000,
            max_buyers: 250_000,
            max_timers: 200_000,
        }
    }
}

/// Units a reservation held went back (to the offer, or to the product
/// once the offer has ended).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    pub reservation: ReservationId,
    pub buyer: Subject,
    pub quantity: u32,
    pub to: UnitsReturn,
}

/// Why a confirm or cancel of a held reservation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldError {
    /// Not held (any more): never existed here, expired, cancelled or
    /// already confirmed. The database says which.
    NotHeld,
    /// Held, but for someone else.
    NotYours,
}

/// What the passing of time did (see [`StockLedger::handle_timeout`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeoutEffects {
    pub expired: Vec<Released>,
    /// The offer reached its end time: this many available units went back
    /// to the product.
    pub ended: Option<u32>,
    /// The start time passed: viewers' countdowns should turn into a button.
    pub opened: bool,
}

#[derive(Clone, Debug)]
struct HeldEntry {
    buyer: Subject,
    /// Whose tally the units count in.
    person: Subject,
    quantity: u32,
    expires_at: UnixMillis,
}

/// The in-memory truth about one offer's units and buyers.
#[derive(Debug)]
pub struct StockLedger {
    terms: OfferTerms,
    limits: LedgerLimits,
    counts: StockCounts,
    ended_at: Option<UnixMillis>,
    /// Tallies per person (see [`Tap::person`]). Persons whose tally drops
    /// to nothing leave, so this is bounded by holds plus buyers.
    buyers: HashMap<Subject, BuyerTally>,
    /// Running totals the invariants are asserted against after every
    /// change: units in `holds`, and held and bought over all tallies.
    hold_units: u64,
    tallied_held: u64,
    tallied_bought: u64,
    holds: HashMap<ReservationId, HeldEntry>,
    /// Soonest expiry first. Entries of holds that were confirmed or
    /// cancelled stay until their time and are skipped then; cheaper than
    /// removing them from the middle.
    expiries: BinaryHeap<Reverse<(UnixMillis, ReservationId)>>,
    open_announced: bool,
}

impl StockLedger {
    /// A ledger for counts as stored. Holds and purchases that those counts
    /// already include are added with [`StockLedger::restore_hold`] and
    /// [`StockLedger::restore_bought`].
    pub fn new(terms: OfferTerms, counts: StockCounts, ended_at: Option<UnixMillis>) -> Self {
        Self::with_limits(terms, counts, ended_at, LedgerLimits::default())
    }

    /// [`StockLedger::new`] with other limits (tests reach them quickly).
    pub fn with_limits(
        terms: OfferTerms,
        counts: StockCounts,
        ended_at: Option<UnixMillis>,
        limits: LedgerLimits,
    ) -> Self {
        let limits = LedgerLimits {
            max_timers: limits.max_timers.max(limits.max_holds),
            ..limits
        };
        StockLedger {
            terms,
            limits,
            counts,
            ended_at,
            buyers: HashMap::new(),
            hold_units: 0,
            tallied_held: 0,
            tallied_bought: 0,
            holds: HashMap::new(),
            expiries: BinaryHeap::new(),
            open_announced: terms.starts_at.is_none(),
        }
    }

    /// Re-arms a held reservation read back from the database, counted
    /// in `person`'s tally. Limits do not apply: what is stored is the
    /// truth. Fails only when a tally would overflow.
    pub fn restore_hold(
        &mut self,
        reservation: ReservationId,
        buyer: &Subject,
        person: &Subject,
        quantity: u32,
        expires_at: UnixMillis,
    ) -> Result<(), StockError> {
        let (buyer, person) = (buyer.clone(), person.clone());
        let tally = self.buyers.entry(person.clone()).or_default();
        tally.held = tally
            .held
            .checked_add(quantity)
            .ok_or(StockError::Unbalanced)?;
        self.tallied_held += u64::from(quantity);
        self.hold_units += u64::from(quantity);
        self.expiries
            .push(Reverse((expires_at, reservation.clone())));
        self.holds.insert(
            reservation,
            HeldEntry {
                buyer,
                person,
                quantity,
                expires_at,
            },
        );
        Ok(())
    }

    /// Counts units a person already bought towards their limit.
    pub fn restore_bought(&mut self, person: &Subject, quantity: u32) -> Result<(), StockError> {
        let tally = self.buyers.entry(person.clone()).or_default();
        tally.bought = tally
            .bought
            .checked_add(quantity)
            .ok_or(StockError::Unbalanced)?;
        self.tallied_bought += u64::from(quantity);
        Ok(())
    }

    pub fn limits(&self) -> &LedgerLimits {
        &self.limits
    }

    /// Reservations held right now.
    pub fn holds(&self) -> usize {
        self.holds.len()
    }

    pub fn terms(&self) -> &OfferTerms {
        &self.terms
    }

    pub fn counts(&self) -> StockCounts {
        self.counts
    }

    pub fn ended_at(&self) -> Option<UnixMillis> {
        self.ended_at
    }

    pub fn state(&self, now: UnixMillis) -> OfferState {
        OfferState::at(
            now,
            self.terms.starts_at,
            self.terms.ends_at,
            self.ended_at,
            &self.counts,
        )
    }

    /// What a person holds and bought of this offer.
    pub fn tally(&self, person: &Subject) -> BuyerTally {
        self.buyers.get(person).copied().unwrap_or_default()
    }

    /// Decides one tap. Refusals change nothing and allocate nothing; an
    /// accepted tap holds its units until `now + hold`.
    pub fn decide(&mut self, tap: Tap, now: UnixMillis) -> Decision {
        if tap.quantity == 0 {
            return Decision::Refused(Refusal::ZeroQuantity);
        }
        if self.ended_at.is_some() || self.terms.ends_at.is_some_and(|end| now >= end) {
            return Decision::Refused(Refusal::Ended);
        }
        // Before the countdown: a guest should sign in while there is time.
        if !self.terms.buyers.admits(tap.account) {
            return Decision::Refused(Refusal::AccountRequired);
        }
        if let Some(starts_at) = self.terms.starts_at.filter(|start| now < *start) {
            return Decision::Refused(Refusal::NotStarted { starts_at });
        }
        if let Err(over) = self
            .tally(&tap.person)
            .check(self.terms.per_buyer_limit, tap.quantity)
        {
            return Decision::Refused(Refusal::OverLimit(over));
        }
        if tap.quantity > self.counts.available {
            return Decision::Refused(Refusal::SoldOut {
                available: self.counts.available,
            });
        }
        if let Err(full) = self.make_room(&tap.person) {
            return Decision::Refused(Refusal::Full(full));
        }
        self.counts
            .hold(tap.quantity)
            .expect("checked against available above");
        let Tap { buyer, person, .. } = tap;
        // Under the per-buyer limit (a u32) by the check above.
        self.buyers.entry(person.clone()).or_default().held += tap.quantity;
        self.tallied_held += u64::from(tap.quantity);
        self.hold_units += u64::from(tap.quantity);
        let reservation = ReservationId::generate();
        let expires_at = now.saturating_add(self.terms.hold);
        self.expiries
            .push(Reverse((expires_at, reservation.clone())));
        self.holds.insert(
            reservation.clone(),
            HeldEntry {
                buyer: buyer.clone(),
                person,
                quantity: tap.quantity,
                expires_at,
            },
        );
        self.assert_invariants();
        Decision::Held(Hold {
            reservation,
            buyer,
            quantity: tap.quantity,
            expires_at,
        })
    }

    /// Turns a held reservation into sold units. Returns the quantity.
    /// A hold whose time has come is not confirmable even if
    /// [`StockLedger::handle_timeout`] has not run yet.
    pub fn confirm(
        &mut self,
        reservation: &ReservationId,
        buyer: &Subject,
        now: UnixMillis,
    ) -> Result<u32, HoldError> {
        let entry = self.live_hold(reservation, buyer, now)?;
        let quantity = entry.quantity;
        let person = entry.person.clone();
        self.holds.remove(reservation);
        self.hold_units -= u64::from(quantity);
        self.counts
            .sell(quantity)
            .expect("a live hold is counted in held");
        let tally = self
            .buyers
            .get_mut(&person)
            .expect("a live hold has a tally");
        tally.held = tally
            .held
            .checked_sub(quantity)
            .expect("a live hold is counted in its person's tally");
        tally.bought = tally
            .bought
            .checked_add(quantity)
            .expect("held plus bought fit a u32 limit");
        self.tallied_held -= u64::from(quantity);
        self.tallied_bought += u64::from(quantity);
        self.assert_invariants();
        Ok(quantity)
    }

    /// The buyer gives a held reservation back.
    pub fn cancel(
        &mut self,
        reservation: &ReservationId,
        buyer: &Subject,
        now: UnixMillis,
    ) -> Result<Released, HoldError> {
        self.live_hold(reservation, buyer, now)?;
        let released = self.release(reservation);
        self.assert_invariants();
        Ok(released)
    }

    /// Releases every hold whose time has come, ends the offer at its end
    /// time and notices its start time.
    pub fn handle_timeout(&mut self, now: UnixMillis) -> TimeoutEffects {
        let mut effects = TimeoutEffects::default();
        // End first: units released afterwards go to the product, which is
        // where they belong once the offer is over.
        if self.ended_at.is_none() && self.terms.ends_at.is_some_and(|end| now >= end) {
            effects.ended = self.end(self.terms.ends_at.unwrap_or(now));
        }
        while let Some(Reverse((expires_at, _))) = self.expiries.peek() {
            if *expires_at > now {
                break;
            }
            let Some(Reverse((expires_at, reservation))) = self.expiries.pop() else {
                break;
            };
            // Skip holds that were confirmed or cancelled meanwhile.
            if self
                .holds
                .get(&reservation)
                .is_some_and(|h| h.expires_at == expires_at)
            {
                effects.expired.push(self.release(&reservation));
            }
        }
        if !self.open_announced && self.terms.starts_at.is_some_and(|start| now >= start) {
            self.open_announced = true;
            effects.opened = self.ended_at.is_none();
        }
        self.assert_invariants();
        effects
    }

    /// When [`StockLedger::handle_timeout`] next has something to do.
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        let expiry = self.expiries.peek().map(|Reverse((at, _))| *at);
        let start = self.terms.starts_at.filter(|_| !self.open_announced);
        let end = self.terms.ends_at.filter(|_| self.ended_at.is_none());
        [expiry, start, end].into_iter().flatten().min()
    }

    /// Ends the offer: available units go back to the product. Returns how
    /// many, or `None` if it had already ended.
    pub fn end(&mut self, at: UnixMillis) -> Option<u32> {
        if self.ended_at.is_some() {
            return None;
        }
        self.ended_at = Some(at);
        self.open_announced = true;
        let returned = self
            .counts
            .withdraw_available()
            .expect("balanced counts give back what is available");
        self.assert_invariants();
        Some(returned)
    }

    /// An unshipped order of a buyer who stands for `person` was cancelled
    /// (and that is committed): its units return, and stop counting towards
    /// the person's limit.
    pub fn order_cancelled(
        &mut self,
        person: &Subject,
        quantity: u32,
    ) -> Result<UnitsReturn, StockError> {
        let to = self.returns_to();
        self.counts.unsell(quantity, to)?;
        if let Some(tally) = self.buyers.get_mut(person) {
            // The database committed the cancellation, so the counts follow
            // it; a tally that had fewer bought is what `check` reports.
            let returned = tally.bought.min(quantity);
            tally.bought -= returned;
            self.tallied_bought -= u64::from(returned);
            if *tally == BuyerTally::default() {
                self.buyers.remove(person);
            }
        }
        self.assert_invariants();
        Ok(to)
    }

    /// Checks the ledger against itself: counts balanced, held units equal
    /// to the holds and to the persons' tallies (each hold in its own
    /// person's), sold equal to what persons bought. For tests and for
    /// logging after a rebuild.
    pub fn check(&self) -> Result<(), String> {
        if !self.counts.is_balanced() {
            return Err(format!("counts out of balance: {:?}", self.counts));
        }
        let in_holds: u64 = self.holds.values().map(|h| u64::from(h.quantity)).sum();
        let buyers_held: u64 = self.buyers.values().map(|t| u64::from(t.held)).sum();
        let buyers_bought: u64 = self.buyers.values().map(|t| u64::from(t.bought)).sum();
        if in_holds != u64::from(self.counts.held) || buyers_held != in_holds {
            return Err(format!(
                "held {} but holds sum to {in_holds} and buyers hold {buyers_held}",
                self.counts.held
            ));
        }
        let mut held_per_person: HashMap<&Subject, u64> = HashMap::new();
        for h in self.holds.values() {
            *held_per_person.entry(&h.person).or_default() += u64::from(h.quantity);
        }
        if let Some((person, tally)) = self.buyers.iter().find(|(person, tally)| {
            held_per_person.get(person).copied().unwrap_or(0) != u64::from(tally.held)
        }) {
            return Err(format!("{person} is tallied {tally:?} but holds differ"));
        }
        if buyers_bought != u64::from(self.counts.sold) {
            return Err(format!(
                "sold {} but buyers bought {buyers_bought}",
                self.counts.sold
            ));
        }
        if let Some((buyer, tally)) = self.buyers.iter().find(|(_, t)| {
            u64::from(t.held) + u64::from(t.bought) > u64::from(self.terms.per_buyer_limit)
        }) {
            return Err(format!(
                "{buyer} has {tally:?}, over the limit {}",
                self.terms.per_buyer_limit
            ));
        }
        if (self.hold_units, self.tallied_held, self.tallied_bought)
            != (in_holds, buyers_held, buyers_bought)
        {
            return Err(format!(
                "running totals (holds {}, held {}, bought {}) differ from the recount",
                self.hold_units, self.tallied_held, self.tallied_bought
            ));
        }
        let timers: HashSet<(UnixMillis, &ReservationId)> = self
            .expiries
            .iter()
            .map(|Reverse((at, id))| (*at, id))
            .collect();
        if let Some(id) = self
            .holds
            .iter()
            .find(|(id, h)| !timers.contains(&(h.expires_at, *id)))
            .map(|(id, _)| id)
        {
            return Err(format!("hold {id} has no expiry timer"));
        }
        if self.buyers.values().any(|t| *t == BuyerTally::default()) {
            return Err("a person with nothing held or bought is still tallied".to_owned());
        }
        Ok(())
    }

    /// The invariants every change keeps, asserted after each one in debug
    /// builds and tests. O(1): they compare running totals with the
    /// counts; [`StockLedger::check`] recounts them.
    fn assert_invariants(&self) {
        debug_assert!(
            self.counts.is_balanced(),
            "counts out of balance: {:?}",
            self.counts
        );
        debug_assert_eq!(
            self.hold_units,
            u64::from(self.counts.held),
            "units in holds against units counted held"
        );
        debug_assert_eq!(
            self.tallied_held, self.hold_units,
            "units held in tallies against units in holds"
        );
        debug_assert_eq!(
            self.tallied_bought,
            u64::from(self.counts.sold),
            "units bought in tallies against units counted sold"
        );
        debug_assert!(
            self.holds.len() <= self.expiries.len(),
            "every hold has an expiry timer"
        );
        debug_assert!(
            self.expiries.len() <= self.limits.max_timers.max(self.holds.len()),
            "timers within their limit"
        );
    }

    /// Makes sure one more hold for `person` fits the limits, compacting the
    /// timer heap if that is what is full.
    fn make_room(&mut self, person: &Subject) -> Result<(), LedgerFull> {
        if self.holds.len() >= self.limits.max_holds {
            return Err(LedgerFull::Holds);
        }
        if self.buyers.len() >= self.limits.max_buyers && !self.buyers.contains_key(person) {
            return Err(LedgerFull::Buyers);
        }
        if self.expiries.len() >= self.limits.max_timers {
            let holds = &self.holds;
            self.expiries
                .retain(|Reverse((at, id))| holds.get(id).is_some_and(|h| h.expires_at == *at));
            if self.expiries.len() >= self.limits.max_timers {
                return Err(LedgerFull::Timers);
            }
        }
        Ok(())
    }

    fn returns_to(&self) -> UnitsReturn {
        if self.ended_at.is_some() {
            UnitsReturn::ToProduct
        } else {
            UnitsReturn::ToOffer
        }
    }

    fn live_hold(
        &self,
        reservation: &ReservationId,
        buyer: &Subject,
        now: UnixMillis,
    ) -> Result<&HeldEntry, HoldError> {
        let entry = self.holds.get(reservation).ok_or(HoldError::NotHeld)?;
        if entry.buyer != *buyer {
            return Err(HoldError::NotYours);
        }
        if now >= entry.expires_at {
            return Err(HoldError::NotHeld);
        }
        Ok(entry)
    }

    fn release(&mut self, reservation: &ReservationId) -> Released {
        let entry = self
            .holds
            .remove(reservation)
            .expect("released hold exists");
        let to = self.returns_to();
        self.counts
            .release(entry.quantity, to)
            .expect("a hold is counted in held");
        self.hold_units -= u64::from(entry.quantity);
        let tally = self
            .buyers
            .get_mut(&entry.person)
            .expect("a hold has a tally");
        tally.held = tally
            .held
            .checked_sub(entry.quantity)
            .expect("a hold is counted in its person's tally");
        self.tallied_held -= u64::from(entry.quantity);
        if *tally == BuyerTally::default() {
            self.buyers.remove(&entry.person);
        }
        Released {
            reservation: reservation.clone(),
            buyer: entry.buyer,
            quantity: entry.quantity,
            to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(raw: &str) -> Subject {
        Subject::from_trusted(raw)
    }

    fn ms(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    const MIN: i64 = 60_000;

    fn terms(limit: u32) -> OfferTerms {
        OfferTerms {
            starts_at: None,
            ends_at: None,
            per_buyer_limit: limit,
            buyers: Buyers::Anyone,
            hold: Duration::from_millis(10 * MIN as u64),
        }
    }

    fn tap(buyer: &str, quantity: u32) -> Tap {
        Tap::by(sub(buyer), quantity)
    }

    fn held(d: Decision) -> Hold {
        match d {
            Decision::Held(h) => h,
            other => panic!("expected a hold, got {other:?}"),
        }
    }

    #[test]
    fn taps_are_decided_in_order_until_sold_out() {
        let mut l = StockLedger::new(terms(5), StockCounts::allot(3), None);
        let a = held(l.decide(tap("usr_a", 2), ms(0)));
        assert_eq!(a.expires_at, ms(10 * MIN));
        assert_eq!(
            l.decide(tap("usr_b", 2), ms(1)),
            Decision::Refused(Refusal::SoldOut { available: 1 })
        );
        held(l.decide(tap("usr_b", 1), ms(2)));
        assert_eq!(
            l.decide(tap("usr_c", 1), ms(3)),
            Decision::Refused(Refusal::SoldOut { available: 0 })
        );
        assert_eq!(l.state(ms(3)), OfferState::SoldOut);
        assert_eq!(
            l.counts(),
            StockCounts {
                allotted: 3,
                available: 0,
                held: 3,
                sold: 0
            }
        );
        l.check().unwrap();
    }

    #[test]
    fn per_buyer_limit_counts_holds_and_purchases() {
        let mut l = StockLedger::new(terms(2), StockCounts::allot(100), None);
        let first = held(l.decide(tap("gst_x", 1), ms(0)));
        l.confirm(&first.reservation, &sub("gst_x"), ms(1)).unwrap();
        held(l.decide(tap("gst_x", 1), ms(2)));
        assert_eq!(
            l.decide(tap("gst_x", 1), ms(3)),
            Decision::Refused(Refusal::OverLimit(OverLimit {
                limit: 2,
                already: 2
            }))
        );
        assert_eq!(l.tally(&sub("gst_x")), BuyerTally { held: 1, bought: 1 });
        // Cancelling the order frees the limit again.
        l.order_cancelled(&sub("gst_x"), 1).unwrap();
        held(l.decide(tap("gst_x", 1), ms(4)));
        l.check().unwrap();
    }

    #[test]
    fn start_and_end_times_gate_taps() {
        let t = OfferTerms {
            starts_at: Some(ms(100)),
            ends_at: Some(ms(200)),
            ..terms(5)
        };
        let mut l = StockLedger::new(t, StockCounts::allot(10), None);
        assert_eq!(
            l.decide(tap("usr_a", 1), ms(99)),
            Decision::Refused(Refusal::NotStarted { starts_at: ms(100) })
        );
        assert_eq!(l.next_deadline(), Some(ms(100)));
        assert!(l.handle_timeout(ms(100)).opened);
        held(l.decide(tap("usr_a", 1), ms(100)));
        assert_eq!(
            l.decide(tap("usr_a", 1), ms(200)),
            Decision::Refused(Refusal::Ended)
        );
        assert_eq!(
            l.decide(tap("usr_a", 0), ms(150)),
            Decision::Refused(Refusal::ZeroQuantity)
        );
    }

    #[test]
    fn holds_expire_in_time_and_units_come_back() {
        let mut l = StockLedger::new(terms(5), StockCounts::allot(1), None);
        let h = held(l.decide(tap("usr_a", 1), ms(0)));
        assert_eq!(l.next_deadline(), Some(h.expires_at));
        assert!(
            l.handle_timeout(h.expires_at.saturating_sub(Duration::from_millis(1)))
                .expired
                .is_empty()
        );
        assert!(matches!(
            l.decide(tap("usr_b", 1), ms(1)),
            Decision::Refused(Refusal::SoldOut { .. })
        ));
        // Not confirmable once its time has come, even before the timer ran.
        assert_eq!(
            l.confirm(&h.reservation, &sub("usr_a"), h.expires_at),
            Err(HoldError::NotHeld)
        );
        let fx = l.handle_timeout(h.expires_at);
        assert_eq!(fx.expired.len(), 1);
        assert_eq!(fx.expired[0].to, UnitsReturn::ToOffer);
        assert_eq!(l.counts().available, 1);
        held(l.decide(
            tap("usr_b", 1),
            h.expires_at.saturating_add(Duration::from_millis(1)),
        ));
        l.check().unwrap();
    }

    #[test]
    fn confirmed_and_cancelled_holds_do_not_expire() {
        let mut l = StockLedger::new(terms(5), StockCounts::allot(5), None);
        let a = held(l.decide(tap("usr_a", 1), ms(0)));
        let b = held(l.decide(tap("usr_b", 2), ms(0)));
        assert_eq!(
            l.confirm(&a.reservation, &sub("usr_b"), ms(1)),
            Err(HoldError::NotYours)
        );
        assert_eq!(
            l.cancel(&b.reservation, &sub("usr_a"), ms(1)),
            Err(HoldError::NotYours)
        );
        assert_eq!(l.confirm(&a.reservation, &sub("usr_a"), ms(1)), Ok(1));
        let released = l.cancel(&b.reservation, &sub("usr_b"), ms(1)).unwrap();
        assert_eq!(released.quantity, 2);
        assert_eq!(
            l.cancel(&b.reservation, &sub("usr_b"), ms(2)),
            Err(HoldError::NotHeld)
        );
        assert!(l.handle_timeout(ms(20 * MIN)).expired.is_empty());
        assert_eq!(
            l.counts(),
            StockCounts {
                allotted: 5,
                available: 4,
                held: 0,
                sold: 1
            }
        );
        l.check().unwrap();
    }

    #[test]
    fn ending_returns_available_units_and_later_releases_go_to_the_product() {
        let t = OfferTerms {
            ends_at: Some(ms(5 * MIN)),
            ..terms(5)
        };
        let mut l = StockLedger::new(t, StockCounts::allot(10), None);
        let a = held(l.decide(tap("usr_a", 3), ms(0)));
        let fx = l.handle_timeout(ms(5 * MIN));
        assert_eq!(fx.ended, Some(7));
        assert_eq!(l.state(ms(5 * MIN)), OfferState::Ended);
        assert_eq!(l.end(ms(6 * MIN)), None, "ends once");
        // The buyer who tapped in time may still confirm or let it lapse.
        let fx = l.handle_timeout(a.expires_at);
        assert_eq!(fx.expired[0].to, UnitsReturn::ToProduct);
        assert_eq!(l.counts(), StockCounts::default());
        l.check().unwrap();
    }

    #[test]
    fn a_restored_ledger_behaves_like_the_one_it_replaces() {
        let mut l = StockLedger::new(
            terms(2),
            StockCounts {
                allotted: 10,
                available: 7,
                held: 2,
                sold: 1,
            },
            None,
        );
        let id = ReservationId::generate();
        l.restore_hold(id.clone(), &sub("usr_a"), &sub("usr_a"), 2, ms(5 * MIN))
            .unwrap();
        l.restore_bought(&sub("usr_b"), 1).unwrap();
        l.check().unwrap();
        assert!(matches!(
            l.decide(tap("usr_a", 1), ms(0)),
            Decision::Refused(Refusal::OverLimit(_))
        ));
        assert!(matches!(
            l.decide(tap("usr_b", 2), ms(0)),
            Decision::Refused(Refusal::OverLimit(_))
        ));
        assert_eq!(l.handle_timeout(ms(5 * MIN)).expired[0].reservation, id);
        assert_eq!(l.counts().available, 9);
        l.check().unwrap();
    }

    #[test]
    fn an_accounts_only_offer_refuses_guests_before_anything_else_but_the_end() {
        let t = OfferTerms {
            buyers: Buyers::AccountsOnly,
            starts_at: Some(ms(100)),
            ends_at: Some(ms(1_000)),
            ..terms(2)
        };
        let mut l = StockLedger::new(t, StockCounts::allot(10), None);
        // Told during the countdown, so there is time to sign in.
        assert_eq!(
            l.decide(tap("gst_a", 1), ms(50)),
            Decision::Refused(Refusal::AccountRequired)
        );
        assert_eq!(
            l.decide(tap("usr_a", 1), ms(50)),
            Decision::Refused(Refusal::NotStarted { starts_at: ms(100) })
        );
        assert_eq!(
            l.decide(tap("gst_a", 1), ms(500)),
            Decision::Refused(Refusal::AccountRequired)
        );
        held(l.decide(tap("usr_a", 2), ms(500)));
        assert_eq!(
            l.decide(tap("gst_a", 1), ms(1_000)),
            Decision::Refused(Refusal::Ended)
        );
        assert_eq!(l.counts().held, 2);
        l.check().unwrap();
    }

    #[test]
    fn linked_guests_share_one_persons_limit_but_keep_their_own_holds() {
        let mut l = StockLedger::new(terms(2), StockCounts::allot(40), None);
        let first = Tap {
            buyer: sub("gst_one"),
            person: sub("gst_one"),
            account: false,
            quantity: 1,
        };
        let second = Tap {
            buyer: sub("gst_two"),
            person: sub("gst_one"),
            ..first.clone()
        };
        let a = held(l.decide(first, ms(0)));
        let b = held(l.decide(second.clone(), ms(0)));
        assert_eq!(
            b.buyer.as_str(),
            "gst_two",
            "held for the guest that tapped"
        );
        assert_eq!(
            l.decide(second.clone(), ms(1)),
            Decision::Refused(Refusal::OverLimit(OverLimit {
                limit: 2,
                already: 2
            }))
        );
        assert_eq!(l.tally(&sub("gst_one")), BuyerTally { held: 2, bought: 0 });
        assert_eq!(l.tally(&sub("gst_two")), BuyerTally::default());
        // Only the guest that holds may confirm; the person's tally moves.
        assert_eq!(
            l.confirm(&b.reservation, &sub("gst_one"), ms(2)),
            Err(HoldError::NotYours)
        );
        assert_eq!(l.confirm(&b.reservation, &sub("gst_two"), ms(2)), Ok(1));
        assert_eq!(l.tally(&sub("gst_one")), BuyerTally { held: 1, bought: 1 });
        l.cancel(&a.reservation, &sub("gst_one"), ms(3)).unwrap();
        held(l.decide(second, ms(4)));
        l.order_cancelled(&sub("gst_one"), 1).unwrap();
        assert_eq!(l.tally(&sub("gst_one")), BuyerTally { held: 1, bought: 0 });
        l.check().unwrap();
        // Expiry gives the person's units back too.
        assert_eq!(l.handle_timeout(ms(4 + 10 * MIN)).expired.len(), 1);
        assert_eq!(l.tally(&sub("gst_one")), BuyerTally::default());
        l.check().unwrap();
    }

    #[test]
    fn a_ledger_restored_per_person_keeps_the_persons_limit() {
        let mut l = StockLedger::new(
            terms(2),
            StockCounts {
                allotted: 10,
                available: 8,
                held: 1,
                sold: 1,
            },
            None,
        );
        let id = ReservationId::generate();
        l.restore_hold(id.clone(), &sub("gst_two"), &sub("gst_one"), 1, ms(5 * MIN))
            .unwrap();
        l.restore_bought(&sub("gst_one"), 1).unwrap();
        l.check().unwrap();
        let third = Tap {
            buyer: sub("gst_three"),
            person: sub("gst_one"),
            account: false,
            quantity: 1,
        };
        assert!(matches!(
            l.decide(third, ms(0)),
            Decision::Refused(Refusal::OverLimit(_))
        ));
        assert_eq!(l.confirm(&id, &sub("gst_two"), ms(1)), Ok(1));
        assert_eq!(l.tally(&sub("gst_one")), BuyerTally { held: 0, bought: 2 });
        l.check().unwrap();
    }

    #[test]
    fn check_catches_a_ledger_out_of_balance() {
        let l = StockLedger::new(
            terms(2),
            StockCounts {
                allotted: 10,
                available: 8,
                held: 2,
                sold: 0,
            },
            None,
        );
        assert!(l.check().is_err(), "held units without holds");
    }

    #[test]
    fn each_limit_refuses_a_tap_clearly_and_frees_up_as_holds_go() {
        let limits = LedgerLimits {
            max_holds: 2,
            max_buyers: 2,
            max_timers: 3,
        };
        let mut l = StockLedger::with_limits(terms(5), StockCounts::allot(100), None, limits);
        let a = held(l.decide(tap("usr_a", 1), ms(0)));
        held(l.decide(tap("usr_b", 1), ms(0)));
        assert_eq!(
            l.decide(tap("usr_c", 1), ms(1)),
            Decision::Refused(Refusal::Full(LedgerFull::Holds))
        );
        assert_eq!(l.counts().held, 2, "a refusal changes nothing");
        // Bought units keep a person tallied: two persons fill the buyers.
        l.confirm(&a.reservation, &sub("usr_a"), ms(1)).unwrap();
        assert_eq!(
            l.decide(tap("usr_c", 1), ms(2)),
            Decision::Refused(Refusal::Full(LedgerFull::Buyers))
        );
        // A person already tallied still fits.
        held(l.decide(tap("usr_a", 1), ms(2)));
        // Expiry frees holds, and a person left with nothing leaves.
        assert_eq!(l.handle_timeout(ms(10 * MIN + 2)).expired.len(), 2);
        held(l.decide(tap("usr_c", 1), ms(10 * MIN + 3)));
        l.check().unwrap();
    }

    #[test]
    fn timers_of_settled_holds_are_compacted_before_the_timer_limit_refuses() {
        let limits = LedgerLimits {
            max_holds: 2,
            max_buyers: 100,
            max_timers: 2,
        };
        let mut l = StockLedger::with_limits(terms(1_000), StockCounts::allot(1_000), None, limits);
        // Far more confirmed holds than timers: each leaves a stale timer.
        for i in 0..50 {
            let h = held(l.decide(tap("usr_a", 1), ms(i)));
            l.confirm(&h.reservation, &sub("usr_a"), ms(i)).unwrap();
            assert!(l.expiries.len() <= 2, "timers stay bounded");
        }
        held(l.decide(tap("usr_a", 1), ms(50)));
        held(l.decide(tap("usr_a", 1), ms(50)));
        assert_eq!(
            l.decide(tap("usr_a", 1), ms(50)),
            Decision::Refused(Refusal::Full(LedgerFull::Holds))
        );
        l.check().unwrap();
        assert_eq!(l.counts().sold, 50);
    }

    #[test]
    fn restoring_more_than_a_tally_holds_is_an_error_not_a_wrap() {
        let mut l = StockLedger::new(terms(u32::MAX), StockCounts::allot(0), None);
        l.restore_bought(&sub("usr_a"), u32::MAX).unwrap();
        assert_eq!(
            l.restore_bought(&sub("usr_a"), 1),
            Err(StockError::Unbalanced)
        );
        assert_eq!(l.tally(&sub("usr_a")).bought, u32::MAX, "unchanged");
    }

    /// One step of a randomized run.
    #[derive(Clone, Debug)]
    enum Step {
        Tap {
            guest: u8,
            account: bool,
            quantity: u32,
        },
        Confirm(usize),
        Cancel(usize),
        /// Lets time pass (milliseconds) and runs the timers.
        Wait(i64),
        End,
        CancelOrder(usize),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..40_u8, any::<bool>(), 0..5_u32)
                .prop_map(|(guest, account, quantity)| Step::Tap { guest, account, quantity }),
            2 => any::<usize>().prop_map(Step::Confirm),
            1 => any::<usize>().prop_map(Step::Cancel),
            2 => (0..4 * MIN).prop_map(Step::Wait),
            1 => Just(Step::End),
            1 => any::<usize>().prop_map(Step::CancelOrder),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Many seeds of taps by guests (three or so to a person), confirms,
        /// cancels, expiries, an end and cancelled orders, under small
        /// limits: after every step the full recount agrees, nothing is
        /// oversold, and every refusal changes nothing.
        #[test]
        fn invariants_hold_whatever_happens(
            steps in proptest::collection::vec(step(), 1..300),
            stock in 0..60_u32,
            limit in 1..6_u32,
        ) {
            let limits = LedgerLimits { max_holds: 12, max_buyers: 10, max_timers: 16 };
            let t = OfferTerms { buyers: Buyers::Anyone, ..terms(limit) };
            let mut l = StockLedger::with_limits(t, StockCounts::allot(stock), None, limits);
            let mut now = 0_i64;
            let mut live: Vec<(ReservationId, String)> = Vec::new();
            let mut orders: Vec<(String, u32)> = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                let before = (l.counts(), l.holds());
                match step {
                    Step::Tap { guest, account, quantity } => {
                        let buyer = format!("gst_{guest}");
                        let person = format!("gst_{}", guest / 3);
                        let tap = Tap { buyer: sub(&buyer), person: sub(&person), account, quantity };
                        match l.decide(tap, ms(now)) {
                            Decision::Held(h) => live.push((h.reservation, buyer)),
                            Decision::Refused(_) => {
                                proptest::prop_assert_eq!(before, (l.counts(), l.holds()));
                            }
                        }
                    }
                    Step::Confirm(pick) if !live.is_empty() => {
                        let (id, who) = live.swap_remove(pick % live.len());
                        let person = format!("gst_{}", who[4..].parse::<u8>().unwrap() / 3);
                        if let Ok(quantity) = l.confirm(&id, &sub(&who), ms(now)) {
                            orders.push((person, quantity));
                        }
                    }
                    Step::Cancel(pick) if !live.is_empty() => {
                        let (id, who) = live.swap_remove(pick % live.len());
                        let _ = l.cancel(&id, &sub(&who), ms(now));
                    }
                    Step::Wait(wait) => {
                        now += wait;
                        l.handle_timeout(ms(now));
                    }
                    Step::End => {
                        l.end(ms(now));
                    }
                    Step::CancelOrder(pick) if !orders.is_empty() => {
                        let (person, quantity) = orders.swap_remove(pick % orders.len());
                        l.order_cancelled(&sub(&person), quantity).unwrap();
                    }
                    _ => {}
                }
                if let Err(e) = l.check() {
                    return Err(proptest::test_runner::TestCaseError::fail(format!("step {i}: {e}")));
                }
                let c = l.counts();
                proptest::prop_assert!(c.held + c.sold <= stock, "oversold: {c:?} of {stock}");
                proptest::prop_assert!(l.holds() <= limits.max_holds);
                proptest::prop_assert!(l.expiries.len() <= limits.max_timers);
                proptest::prop_assert!(l.buyers.len() <= limits.max_buyers);
            }
        }
    }
}
