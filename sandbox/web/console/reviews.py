"""Console pages of publication and tier reviews (第十、十二条; issue 14).

The owner follows their submissions and answers the regulator's tier proposals; the
regulator reads the scan of what would be published and the de-identification recipe, then
co-signs or rejects. Views parse forms and delegate to :mod:`sandbox.governance.publication`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.errors import NotFound, SandboxError
from sandbox.governance import publication, tier_disputes
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.errors import attempt

bp = Blueprint("reviews", __name__, url_prefix="/reviews")


@bp.get("")
@role_required("owner", "regulator")
def index():
    items = publication.list_reviews(sandbox(), signed_in())
    return render_template("reviews/list.html", items=items)


@bp.get("/<int:review_id>")
@role_required("owner", "regulator")
def detail(review_id: int):
    try:
        review = publication.get_review(sandbox(), signed_in(), review_id)
    except (NotFound, SandboxError):
        abort(404)
    return render_template("reviews/detail.html", r=review)


def _after(review_id: int, action, body: dict[str, Any], done: str):
    if attempt(action, sandbox(), signed_in(), review_id, body)[0]:
        flash(done, "success")
    return redirect(url_for("reviews.detail", review_id=review_id), code=303)


@bp.post("/<int:review_id>/decision")
@role_required("regulator")
def decide(review_id: int):
    body = {"decision": request.form.get("decision", ""), "reason": request.form.get("reason", "")}
    done = (_("Co-signed: the change is applied.") if body["decision"] == "approve"
            else _("Rejected; the owner sees your reason."))
    return _after(review_id, publication.decide, body, done)


@bp.post("/<int:review_id>/answer")
@role_required("owner")
def answer(review_id: int):
    body: dict[str, Any] = {"accept": request.form.get("accept") == "1",
                            "reasons": request.form.get("reasons", ""),
                            "acknowledge_findings": request.form.get("acknowledge_findings", ""),
                            "deidentification": request.form.get("deidentification", "")}
    if request.form.get("k_anonymity", "").strip().isdigit():
        body["k_anonymity"] = int(request.form["k_anonymity"])
    done = _("Submitted for the regulator's co-signature.") if body["accept"] else _("Proposal declined.")
    return _after(review_id, tier_disputes.answer, body, done)


@bp.post("/<int:review_id>/city-decision")
@role_required("regulator")
def city_decide(review_id: int):
    body = {k: request.form.get(k, "") for k in ("outcome", "reason")}
    return _after(review_id, tier_disputes.city_decision, body, _("The city bureau's decision is recorded."))


@bp.post("/<int:review_id>/expert")
@role_required("regulator")
def expert(review_id: int):
    body = {k: request.form.get(k, "") for k in ("experts", "opinion", "outcome")}
    return _after(review_id, tier_disputes.expert_review, body, _("Expert review recorded."))
