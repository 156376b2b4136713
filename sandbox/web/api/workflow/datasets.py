"""Workflow API: datasets in the open: the catalog and downloads, tiers, risk reports,
classification, legal basis, budget caps, publication reviews, opening plans, transparency
(第八、十、十一、十二、十三、十四条)."""

from __future__ import annotations

from flask import Response, g, jsonify, request

from sandbox.governance import (
    classification,
    dataset_caps,
    open_catalog,
    opening_plans,
    publication,
    tier_disputes,
    transparency,
)
from sandbox.service import bounding_report
from sandbox.web.api.base import json_body, sandbox
from sandbox.web.api.workflow.blueprint import accepted_if_review, bp, optional_body


# -- catalog, tiers, risk, downloads (第八、十、十一、十二、十四条) ---------------------------------------
@bp.get("/api/v1/catalog")
def get_catalog():
    return jsonify({"datasets": open_catalog.list_entries(sandbox(), g.user)})


@bp.get("/api/v1/catalog/<name>")
def get_catalog_entry(name: str):
    return jsonify(open_catalog.get_entry(sandbox(), g.user, name))


@bp.get("/catalog.jsonld")
def get_catalog_jsonld():
    body = open_catalog.jsonld(sandbox(), g.user, request.host_url)
    return Response(jsonify(body).get_data(), mimetype="application/ld+json")


@bp.get("/api/v1/datasets/<name>/download")
def download(name: str):
    fmt = request.args.get("format", "csv")
    payload, mimetype, filename = open_catalog.download(sandbox(), g.user, name, fmt)
    return Response(payload, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.post("/api/v1/datasets/<name>/tier")
def post_tier(name: str):
    return accepted_if_review(open_catalog.change_tier(sandbox(), g.user, name, json_body()))


@bp.get("/api/v1/datasets/<name>/risk")
def get_risk(name: str):
    return jsonify(open_catalog.risk_report(sandbox(), g.user, name))


@bp.get("/api/v1/datasets/<name>/bounding-report")
def get_bounding_report(name: str):
    return jsonify(bounding_report.read(sandbox(), g.user, name))


@bp.post("/api/v1/datasets/<name>/risk/ack")
def post_risk_ack(name: str):
    return accepted_if_review(open_catalog.acknowledge_risk(sandbox(), g.user, name, optional_body()))


@bp.put("/api/v1/datasets/<name>/legal-basis")
def put_legal_basis(name: str):
    return jsonify(open_catalog.set_legal_basis(sandbox(), g.user, name, json_body()))


@bp.put("/api/v1/datasets/<name>/classification")
def put_classification(name: str):
    return jsonify(classification.set_classification(sandbox(), g.user, name, json_body()))


@bp.get("/api/v1/datasets/<name>/budget-cap")
def get_budget_cap(name: str):
    return jsonify(dataset_caps.read(sandbox(), g.user, name))


@bp.put("/api/v1/datasets/<name>/budget-cap")
def put_budget_cap(name: str):
    return jsonify(dataset_caps.set_cap(sandbox(), g.user, name, json_body()))


@bp.get("/api/v1/transparency")
def get_transparency():
    return jsonify(transparency.page(sandbox(), g.user))


# -- publication and tier reviews (第十、十二条; issue 14) ----------------------------------------------
@bp.get("/api/v1/reviews")
def list_reviews():
    return jsonify({"reviews": publication.list_reviews(sandbox(), g.user)})


@bp.get("/api/v1/reviews/<review_id>")
def get_review(review_id: str):
    return jsonify(publication.get_review(sandbox(), g.user, review_id))


@bp.post("/api/v1/reviews/<review_id>/decision")
def post_review_decision(review_id: str):
    return jsonify(publication.decide(sandbox(), g.user, review_id, json_body()))


@bp.post("/api/v1/reviews/<review_id>/answer")
def post_review_answer(review_id: str):
    return accepted_if_review(tier_disputes.answer(sandbox(), g.user, review_id, json_body()))


@bp.post("/api/v1/reviews/<review_id>/expert-review")
def post_expert_review(review_id: str):
    return jsonify(tier_disputes.expert_review(sandbox(), g.user, review_id, json_body()))


@bp.post("/api/v1/reviews/<review_id>/city-decision")
def post_city_decision(review_id: str):
    return jsonify(tier_disputes.city_decision(sandbox(), g.user, review_id, json_body()))


# -- opening plans (第十三条) ---------------------------------------------------------------------------
@bp.get("/api/v1/opening-plans")
def list_opening_plans():
    return jsonify({"opening_plans": opening_plans.list_plans(sandbox())})


@bp.post("/api/v1/opening-plans")
def post_opening_plan():
    return jsonify(opening_plans.publish(sandbox(), g.user, json_body())), 201


@bp.post("/api/v1/opening-plans/<plan_id>/comments")
def post_opening_plan_comment(plan_id: str):
    """No login (第十三条: public consultation); rate-limited per address."""
    return jsonify(opening_plans.comment(sandbox(), plan_id, json_body(), address=request.remote_addr or "?")), 201


@bp.get("/api/v1/opening-plans/<plan_id>/comments")
def list_opening_plan_comments(plan_id: str):
    return jsonify({"comments": opening_plans.comments(sandbox(), g.user, plan_id)})
