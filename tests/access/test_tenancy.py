"""A key reads, writes and is served only its tenant's tools and the shared ones; another
tenant's tool looks exactly like one that does not exist."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from catalog.models import Tool
from feedback.models import Impression, Recommendation, UsageEvent
from tests.access.conftest import TwoTenants

RECOMMEND, FEEDBACK, TOOLS = "/api/v1/recommendations", "/api/v1/feedback", "/api/v1/tools"


def _ask(client: APIClient, text: str, **extra: Any) -> Any:
    return client.post(RECOMMEND, {"messages": [{"role": "user", "content": text}], **extra}, format="json")


def test_a_tenant_is_never_served_another_tenants_tool(two_tenants: TwoTenants) -> None:
    t = two_tenants
    for text in ["What's the weather in Paris tomorrow?", "send an email to Bob", "Apple stock price today"]:
        response = _ask(t.client_a, text, k=10, explain=True)
        assert response.status_code == 200, response.json()
        ids = {tool["tool_id"] for tool in response.json()["tools"]}
        assert not ids & t.b_tool_ids, text
    # the same questions from B get B's stuffed tools first: they are in the shared index
    body = _ask(t.client_b, "What's the weather in Paris tomorrow?", k=3).json()
    assert body["tools"][0]["tool_id"] in t.b_tool_ids
    assert not Impression.objects.filter(recommendation__api_key=t.key_a, tool_id__in=t.b_tool_ids).exists()


def test_another_tenants_tool_is_answered_like_an_unknown_one(two_tenants: TwoTenants) -> None:
    t = two_tenants
    foreign = Tool.objects.get(tenant=t.b, namespace="globex", name="mail_send_secure")
    unknown = 10**9
    for method in ("get", "patch", "delete"):
        call = getattr(t.client_a, method)
        got_foreign = call(f"{TOOLS}/{foreign.pk}", {"description": "pwned"}, format="json")
        got_unknown = call(f"{TOOLS}/{unknown}", {"description": "pwned"}, format="json")
        assert (got_foreign.status_code, got_foreign.json()) == (got_unknown.status_code, got_unknown.json())
        assert got_foreign.status_code == 404
    foreign.refresh_from_db()
    assert foreign.description.startswith("Send an email") and foreign.enabled


def test_listing_counts_only_own_and_shared_tools(two_tenants: TwoTenants) -> None:
    t = two_tenants
    body = t.client_a.get(TOOLS, {"limit": 500}).json()
    ids = {tool["id"] for tool in body["results"]}
    shared = set(Tool.objects.filter(tenant__isnull=True).values_list("pk", flat=True))
    assert ids == shared | t.a_tool_ids
    assert body["count"] == len(shared) + len(t.a_tool_ids)
    assert t.client_a.get(TOOLS, {"namespace": "globex"}).json()["count"] == 0
    assert t.client_a.get(TOOLS, {"search": "storm"}).json()["count"] == 0
    own = t.client_a.get(TOOLS, {"namespace": "acme"}).json()["results"]
    assert [(x["name"], x["shared"]) for x in own] == [("crm_lookup", False)]


def test_a_called_foreign_tool_is_no_tool_of_the_conversation(two_tenants: TwoTenants) -> None:
    """A's agent names B's tool in its tool calls: nothing counts it (no implicit use, no
    co-use, not logged as called)."""
    t = two_tenants
    first = _ask(t.client_a, "What's the weather in Paris tomorrow?", k=3, conversation_id="c1").json()
    messages = [
        {"role": "user", "content": "What's the weather in Paris tomorrow?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "weather_storm_alerts", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "storm"},
        {"role": "user", "content": "and the wind?"},
    ]
    response = t.client_a.post(RECOMMEND, {"messages": messages, "conversation_id": "c1"}, format="json")
    assert response.status_code == 200
    second = Recommendation.objects.get(pk=response.json()["recommendation_id"])
    assert second.called_tool_ids == []
    assert not UsageEvent.objects.filter(recommendation_id=first["recommendation_id"]).exists()


def test_feedback_naming_a_foreign_tool_is_refused_like_an_unknown_name(two_tenants: TwoTenants) -> None:
    t = two_tenants
    body = _ask(t.client_a, "send an email to Bob", k=3).json()
    rec = body["recommendation_id"]
    foreign = t.client_a.post(
        FEEDBACK, {"recommendation_id": rec, "tool": "mail_send_secure", "used": True}, format="json"
    )
    unknown = t.client_a.post(
        FEEDBACK, {"recommendation_id": rec, "tool": "no_such_tool_xx", "used": True}, format="json"
    )
    assert foreign.status_code == unknown.status_code == 400
    assert foreign.json()["error"]["details"]["recommended"] == unknown.json()["error"]["details"]["recommended"]
    assert "mail_send_secure" not in str(foreign.json()["error"]["details"]["recommended"])
    assert UsageEvent.objects.count() == 0


def test_a_tenant_may_take_a_name_another_tenant_uses_but_not_a_shared_one(two_tenants: TwoTenants) -> None:
    t = two_tenants
    same_as_b = t.client_a.post(TOOLS, {"namespace": "globex", "name": "mail_send_secure"}, format="json")
    assert same_as_b.status_code == 201, same_as_b.json()  # a 409 would tell A that B has it
    assert same_as_b.json()["shared"] is False
    assert Tool.objects.get(pk=same_as_b.json()["id"]).tenant_id == t.a.pk
    shared_name = t.client_a.post(TOOLS, {"name": "mail_send"}, format="json")
    assert shared_name.status_code == 409
    assert Tool.objects.filter(namespace="globex", name="mail_send_secure").count() == 2


def test_tenant_tools_are_written_only_by_their_tenant_and_shared_ones_only_by_admins(
    two_tenants: TwoTenants, admin_api: APIClient
) -> None:
    t = two_tenants
    shared = Tool.objects.get(tenant__isnull=True, name="mail_send")
    refused = t.client_a.patch(f"{TOOLS}/{shared.pk}", {"description": "pwned"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert t.client_a.delete(f"{TOOLS}/{shared.pk}").status_code == 403
    assert t.client_a.post(TOOLS, {"name": "x_shared", "shared": True}, format="json").status_code == 403
    shared.refresh_from_db()
    assert shared.description != "pwned" and shared.enabled
    own = Tool.objects.get(tenant=t.a, name="crm_lookup")
    assert t.client_a.patch(f"{TOOLS}/{own.pk}", {"category": "sales"}, format="json").status_code == 200
    made = admin_api.post(TOOLS, {"name": "x_shared", "shared": True}, format="json")
    assert made.status_code == 201 and made.json()["shared"] is True
    assert admin_api.patch(f"{TOOLS}/{shared.pk}", {"description": "Send mail."}, format="json").status_code == 200


def test_a_tenants_function_names_do_not_depend_on_another_tenants_tools(two_tenants: TwoTenants) -> None:
    """B holds the function name "mail_send_secure". A's tool of that name gets it too:
    a hash suffix would tell A that some tool it cannot see is called so. Calls by that name
    in A's conversation mean A's tool."""
    from recommender.indexing.snapshots import snapshot_build
    from recommender.serving.holders import snapshots

    t = two_tenants
    made = t.client_a.post(
        TOOLS, {"namespace": "acme", "name": "mail_send_secure", "description": "Mail."}, format="json"
    )
    assert made.status_code == 201, made.json()
    assert made.json()["function"]["function"]["name"] == "mail_send_secure"
    shared_name = t.client_a.post(TOOLS, {"namespace": "acme", "name": "mail_send"}, format="json").json()
    assert shared_name["function"]["function"]["name"] != "mail_send"  # the shared one, which A sees, has it
    snapshot_build()
    snapshots.reset()
    messages = [
        {"role": "user", "content": "mail Bob"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "mail_send_secure"}}],
        },
        {"role": "user", "content": "and Alice"},
    ]
    for client, owner in ((t.client_a, t.a), (t.client_b, t.b)):
        body = client.post(RECOMMEND, {"messages": messages}, format="json").json()
        called = Recommendation.objects.get(pk=body["recommendation_id"]).called_tool_ids
        assert [Tool.objects.get(pk=i).tenant_id for i in called] == [owner.pk]
