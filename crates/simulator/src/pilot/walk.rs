//! One pilot case carried out: opened at routing, ordered, answered by suppliers down the
//! ranks, worked on, invoiced, approved and paid — or left where its path ends — with the days
//! between the steps from the case's [`Pace`].
//!
//! Why the walk follows answers, not the plan alone: the plan says what the case's people
//! mean to do (decline twice, invoice too much, never start), but the system decides what
//! follows — a decline brings a follow-up order or a fallback, a full month sends the order to
//! a lower rank or refuses it, budget may deny the money. The walk does what the plan asks
//! where the contract leaves the choice to the caller, and otherwise goes where the system
//! sends it; [`super::observe`] then says which path that was.

use anyhow::{Context, bail, ensure};
use ekb_domain::parse_iso_date;
use ekb_proto::v1::{self, CompetenceArea, InvoiceRejectionReason, InvoiceStatus, OrderStatus};
use time::{Date, Duration, Month};

use super::{
    PilotPath,
    agreements::find_agreements,
    fallback,
    orders::{self, Placement},
    pace::Pace,
};
use crate::{
    plan::{CaseMoney, CasePlan},
    regular::steps,
    timeline::Sim,
};

/// Days after acceptance the expert must start by: pilot-ordering's `pilot_ordering.start`
/// default. Past it the sweep expires the order; a longer setting only makes the wait longer.
pub const START_DAYS: i64 = 30;

/// What the walk left behind for the observation: the case, and the money only the simulator
/// knows (what it paid as the payment system, the grant of a fallback).
#[derive(Debug, Clone, Default)]
pub struct Walked {
    /// Routing's case id.
    pub case_id: String,
    /// Øre the simulator recorded as paid on the pilot's invoices.
    pub paid_ore: i64,
    /// After a fallback: the money the regular flow moved (its grant's reservation, the payout).
    pub regular: Option<CaseMoney>,
}

/// Where the ordering stood when the walk stopped looking for a supplier.
enum Ordered {
    /// A supplier accepted this order.
    Accepted(Box<v1::Order>),
    /// The case ended without an accepted order (budget denied it, or it left the pilot and
    /// was carried on in the regular flow).
    Ended,
}

/// One pilot case on its way.
struct Walk<'a> {
    sim: &'a Sim,
    case: &'a CasePlan,
    area: CompetenceArea,
    path: PilotPath,
    pace: Pace,
    walked: Walked,
}

/// Opens `case` on its day and carries out `path`; returns what the observation needs.
pub async fn walk(sim: &Sim, case: &CasePlan, path: PilotPath) -> anyhow::Result<Walked> {
    let area = case
        .area
        .with_context(|| format!("pilot case {} has no framework area", case.number))?;
    sim.on(case.opened_on).await;
    let case_id = steps::open_case(sim, case, v1::Flow::Pilot).await?.case_id;
    let mut walk = Walk {
        sim,
        case,
        area,
        path,
        pace: Pace::draw(case.seed),
        walked: Walked {
            case_id,
            ..Walked::default()
        },
    };
    walk.carry_out().await?;
    Ok(walk.walked)
}

impl Walk<'_> {
    async fn carry_out(&mut self) -> anyhow::Result<()> {
        self.sim.after_days(self.pace.order_after).await;
        let Ordered::Accepted(accepted) = self.order_and_answer().await? else {
            return Ok(());
        };
        let accepted_on = self.sim.today();
        if self.path == PilotPath::NotStarted {
            let due = accepted_on + Duration::days(START_DAYS + 1);
            orders::expired(
                self.sim,
                &accepted.order_id,
                v1::OrderExpiryReason::NotStartedInTime,
                due,
            )
            .await?;
            return Ok(());
        }
        self.sim.after_days(self.pace.start_after).await;
        let started = orders::start(self.sim, &accepted.order_id).await?;
        if self.path == PilotPath::Aborted {
            self.sim.after_days(self.pace.abort_after).await;
            let aborted =
                orders::abort(self.sim, &started.order_id, self.pace.abort_reason).await?;
            self.sim.after_days(self.pace.invoice_after).await;
            let amount = self.pace.partial_invoice(aborted.price_ore);
            let invoice = self.invoice(&aborted, 1, amount).await?;
            return self.approve_and_pay(&aborted, &invoice).await;
        }
        self.sim.after_days(self.pace.work_days).await;
        let completed = orders::complete(self.sim, &started.order_id).await?;
        if self.path == PilotPath::InvoiceDeadlineMissed {
            let deadline = parse_iso_date(&completed.invoice_deadline_date).with_context(|| {
                format!(
                    "order {} has no invoice deadline date ({:?})",
                    completed.order_id, completed.invoice_deadline_date
                )
            })?;
            orders::expired(
                self.sim,
                &completed.order_id,
                v1::OrderExpiryReason::InvoiceDeadlinePassed,
                deadline + Duration::days(1),
            )
            .await?;
            return Ok(());
        }
        self.sim.after_days(self.pace.invoice_after).await;
        let mut number = 1;
        if self.path == PilotPath::InvoiceAbovePrice {
            let too_much = self.pace.above_price_invoice(completed.price_ore);
            let rejected = self.invoice(&completed, number, too_much).await?;
            ensure!(
                rejected.status() == InvoiceStatus::Rejected
                    && rejected.rejection_reason() == InvoiceRejectionReason::PriceAboveAgreement,
                "an invoice of {too_much} øre on order {} (price {}) was {:?} ({:?}), not \
                 REJECTED PRICE_ABOVE_AGREEMENT",
                completed.order_id,
                completed.price_ore,
                rejected.status(),
                rejected.rejection_reason()
            );
            number += 1;
            self.sim.after_days(self.pace.correction_after).await;
        }
        let amount = self.pace.completed_invoice(completed.price_ore);
        let invoice = self.invoice(&completed, number, amount).await?;
        self.approve_and_pay(&completed, &invoice).await
    }

    /// Places the case's order and lets suppliers answer it, down the ranks as the path wants,
    /// until one accepts or the case ends without one.
    async fn order_and_answer(&mut self) -> anyhow::Result<Ordered> {
        let Some(mut current) = self.place_first().await? else {
            return Ok(Ordered::Ended);
        };
        let mut declines_left = self.declines_wanted().await?;
        let mut answers = 0;
        loop {
            self.sim.after_days(self.pace.answer_days(answers)).await;
            answers += 1;
            let decline = declines_left > 0;
            let answered = orders::respond(self.sim, &current, !decline).await?;
            if !decline {
                let accepted = answered
                    .order
                    .context("RecordSupplierResponse answered without the order")?;
                ensure!(
                    accepted.status() == OrderStatus::Accepted,
                    "order {} is {:?} after its supplier accepted",
                    accepted.order_id,
                    accepted.status()
                );
                return Ok(Ordered::Accepted(Box::new(accepted)));
            }
            declines_left -= 1;
            match answered.next_order {
                Some(next) => match self.funds(&next.order_id).await? {
                    Some(placed) => current = placed,
                    None => return Ok(Ordered::Ended),
                },
                None => {
                    // No candidate left: pilot-ordering asked routing to fall the case back.
                    self.carry_on_regular().await?;
                    return Ok(Ordered::Ended);
                }
            }
        }
    }

    /// How many suppliers decline: every one on the fallback path; on the declined path the
    /// drawn number, leaving at least one agreement of the area to accept; none otherwise.
    async fn declines_wanted(&self) -> anyhow::Result<usize> {
        Ok(match self.path {
            PilotPath::Fallback => usize::MAX,
            PilotPath::Declined => {
                let agreements =
                    find_agreements(self.sim, self.area, &self.sim.today_text()).await?;
                self.pace.declines.min(agreements.len().saturating_sub(1))
            }
            _ => 0,
        })
    }

    /// The caseworker's first order, PLACED once budget reserved; `None` when the case ended
    /// without one (budget denied it; every agreement was full or none could serve, and the
    /// case went on in the regular flow). When every agreement is full the caseworker may wait
    /// for the next month's capacity once, as the pace decides.
    async fn place_first(&mut self) -> anyhow::Result<Option<v1::Order>> {
        let mut waited = false;
        loop {
            let placement =
                orders::place(self.sim, &self.walked.case_id, &self.case.employee).await?;
            let refused = match placement {
                Placement::Ordered(order) => return self.funds(&order.order_id).await,
                Placement::Refused(reason) => reason,
            };
            let flow_reason = match refused.as_str() {
                "AGREEMENTS_FULL" if self.pace.wait_for_capacity && !waited => {
                    waited = true;
                    self.sim.on(first_of_next_month(self.sim.today())?).await;
                    continue;
                }
                "AGREEMENTS_FULL" => v1::FlowChangeReason::AgreementsFull,
                "NO_SUPPLIER_AVAILABLE" => v1::FlowChangeReason::NoSupplierAvailable,
                "NO_ACTIVE_AGREEMENT" => v1::FlowChangeReason::AgreementEnded,
                "CASE_NOT_PILOT" => v1::FlowChangeReason::Unspecified,
                other => bail!("PlaceOrder for case {} refused: {other}", self.case.number),
            };
            if flow_reason != v1::FlowChangeReason::Unspecified {
                fallback::send_to_regular(self.sim, &self.walked.case_id, flow_reason).await?;
            }
            self.carry_on_regular().await?;
            return Ok(None);
        }
    }

    /// Budget's answer to order `order_id`: the order PLACED, or `None` when budget denied it.
    async fn funds(&self, order_id: &str) -> anyhow::Result<Option<v1::Order>> {
        let answered = orders::funds_answered(self.sim, order_id).await?;
        match answered.status() {
            OrderStatus::Placed => Ok(Some(answered)),
            OrderStatus::Cancelled => Ok(None),
            other => bail!("order {order_id} went {other:?} while budget was asked"),
        }
    }

    /// The case left the pilot: carry it on in the regular flow.
    async fn carry_on_regular(&mut self) -> anyhow::Result<()> {
        let money = fallback::carry_on(self.sim, self.case, &self.walked.case_id).await?;
        self.walked.regular = Some(money);
        Ok(())
    }

    /// The order's supplier invoices `order` today for `amount_ore`, its `number`th invoice.
    async fn invoice(
        &self,
        order: &v1::Order,
        number: u32,
        amount_ore: i64,
    ) -> anyhow::Result<v1::SupplierInvoice> {
        let invoice_number = format!("SIM-{}-{}", self.case.number, number);
        orders::invoice(self.sim, order, &invoice_number, amount_ore).await
    }

    /// Four eyes on `invoice` of `order` and the payment system's answer, each after its days.
    async fn approve_and_pay(
        &mut self,
        order: &v1::Order,
        invoice: &v1::SupplierInvoice,
    ) -> anyhow::Result<()> {
        ensure!(
            invoice.status() == InvoiceStatus::Submitted,
            "invoice {} of order {} is {:?}, not SUBMITTED",
            invoice.invoice_id,
            order.order_id,
            invoice.status()
        );
        self.sim.after_days(self.pace.attest_after).await;
        orders::attest(self.sim, &invoice.invoice_id).await?;
        self.sim.after_days(self.pace.approve_after).await;
        let approved = orders::approve(self.sim, &invoice.invoice_id).await?;
        self.sim.after_days(self.pace.pay_after).await;
        self.walked.paid_ore += orders::pay(self.sim, &order.order_id, &approved).await?;
        Ok(())
    }
}

/// The first day of the month after `day`'s.
pub fn first_of_next_month(day: Date) -> anyhow::Result<Date> {
    let (year, month) = match day.month() {
        Month::December => (day.year() + 1, Month::January),
        month => (day.year(), month.next()),
    };
    Date::from_calendar_date(year, month, 1).with_context(|| format!("the month after {day}"))
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn the_next_month_starts_on_its_first_and_december_rolls_the_year() {
        assert_eq!(
            first_of_next_month(date!(2027 - 03 - 17)).expect("a day"),
            date!(2027 - 04 - 01)
        );
        assert_eq!(
            first_of_next_month(date!(2027 - 12 - 31)).expect("a day"),
            date!(2028 - 01 - 01)
        );
    }
}
