"""The experiments API under /api/v1/experiments: list, create, read, start, stop, promote,
results, and the default policy (read, roll back). One view per operation; each write calls
the same service as the admin, the dashboard's buttons, the commands and Celery.

Experiments are global: a running one changes what every tenant is served. So the API asks
for the `experiments` scope (or `admin`, which holds every scope), whichever tenant the key
belongs to, for reads as well (results sum every tenant's traffic); a signed-in staff user
with the experiments permissions may call it from the browser (the interactive docs)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import ApiKey, Scope
from access.policy import Forbidden, scope_require
from experiments import services
from experiments.models import Experiment
from experiments.results import effect_over_time, experiment_results, log_rows, results_json
from experiments.selectors import experiment_get, experiment_list, policy_current, policy_history
from experiments.serializers import (
    RESULTS_SCHEMA,
    DefaultPolicySerializer,
    ExperimentCreateSerializer,
    ExperimentDetailSerializer,
    ExperimentListQuerySerializer,
    ExperimentPageSerializer,
    ExperimentSerializer,
    PolicyVersionSerializer,
    PromotedSerializer,
    PromoteSerializer,
    ResultsQuerySerializer,
    StopSerializer,
)
from toolrec_site.openapi import ERROR_SCHEMA

KEY = OpenApiParameter(
    "key", {"type": "string", "maxLength": 100, "pattern": "^[-a-zA-Z0-9_]+$"}, OpenApiParameter.PATH
)
CONFLICT = OpenApiResponse(response=ERROR_SCHEMA, description="Not in a state that allows it, or the key exists.")
# Reads too: the generic error answers (toolrec_site.openapi) give a 403 to writes only.
FORBIDDEN = OpenApiResponse(response=ERROR_SCHEMA, description="The key lacks the experiments scope.")


def operator_of(request: Request, *, write: bool) -> str:
    """Who acts, for the experiment's log; raises 403 for a key without the scope."""
    if isinstance(request.auth, ApiKey):
        scope_require(request.auth, Scope.EXPERIMENTS)
        return f"api key {request.auth.name} ({request.auth.prefix}…)"[:150]
    user = request.user
    if getattr(user, "is_staff", False) and user.has_perm(f"experiments.{'change' if write else 'view'}_experiment"):
        return str(user.get_username())
    raise Forbidden("This endpoint needs an API key with the 'experiments' scope.")


class ExperimentPagination(LimitOffsetPagination):
    max_limit = 500


class _ExperimentsApi(APIView):
    throttle_scope = "experiments"  # every request, reads too: results read the whole log


class ExperimentListCreateApi(_ExperimentsApi):
    @extend_schema(
        operation_id="experiments_list",
        parameters=[ExperimentListQuerySerializer],
        responses={200: ExperimentPageSerializer, 403: FORBIDDEN},
    )
    def get(self, request: Request) -> Response:
        operator_of(request, write=False)
        query = ExperimentListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        paginator = ExperimentPagination()
        page = paginator.paginate_queryset(experiment_list(status=query.validated_data.get("status")), request, self)
        return paginator.get_paginated_response(ExperimentSerializer(page, many=True).data)

    @extend_schema(
        operation_id="experiments_create",
        request=ExperimentCreateSerializer,
        responses={201: ExperimentDetailSerializer, 409: CONFLICT},
        description="A draft experiment with its variants; start it with POST .../start.",
    )
    def post(self, request: Request) -> Response:
        actor = operator_of(request, write=True)
        serializer = ExperimentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(serializer.validated_data)
        variants = [services.VariantSpec(**v) for v in data.pop("variants")]
        experiment = services.experiment_create(
            key=data.pop("key"),
            name=data.pop("name"),
            unit=data.pop("unit"),
            traffic=(data.pop("traffic_start"), data.pop("traffic_end")),
            variants=variants,
            actor=actor,
            **data,
        )
        return Response(ExperimentDetailSerializer(experiment_get(key=experiment.key)).data, status.HTTP_201_CREATED)


class ExperimentDetailApi(_ExperimentsApi):
    @extend_schema(
        operation_id="experiments_retrieve",
        parameters=[KEY],
        responses={200: ExperimentDetailSerializer, 403: FORBIDDEN},
    )
    def get(self, request: Request, key: str) -> Response:
        operator_of(request, write=False)
        return Response(ExperimentDetailSerializer(experiment_get(key=key)).data)


def _detail(experiment: Experiment) -> Response:
    return Response(ExperimentDetailSerializer(experiment_get(key=experiment.key)).data)


class ExperimentStartApi(_ExperimentsApi):
    @extend_schema(
        operation_id="experiments_start",
        parameters=[KEY],
        request=None,
        responses={200: ExperimentDetailSerializer, 409: CONFLICT},
        description="Start a draft: its slice of traffic is split between its variants within seconds.",
    )
    def post(self, request: Request, key: str) -> Response:
        actor = operator_of(request, write=True)
        return _detail(services.experiment_start(experiment=experiment_get(key=key), actor=actor))


class ExperimentStopApi(_ExperimentsApi):
    @extend_schema(
        operation_id="experiments_stop",
        parameters=[KEY],
        request=StopSerializer,
        responses={200: ExperimentDetailSerializer, 409: CONFLICT},
        description="Stop it: its units are served the default policy again within seconds.",
    )
    def post(self, request: Request, key: str) -> Response:
        actor = operator_of(request, write=True)
        body = StopSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"] or "stopped through the API"
        return _detail(services.experiment_stop(experiment=experiment_get(key=key), actor=actor, reason=reason))


class ExperimentPromoteApi(_ExperimentsApi):
    @extend_schema(
        operation_id="experiments_promote",
        parameters=[KEY],
        request=PromoteSerializer,
        responses={200: PromotedSerializer},
        description="Make the variant's policy the default for all traffic (a new policy version) and stop it.",
    )
    def post(self, request: Request, key: str) -> Response:
        actor = operator_of(request, write=True)
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        experiment = experiment_get(key=key)
        version = services.experiment_promote(
            experiment=experiment, variant_name=body.validated_data["variant"], actor=actor
        )
        return Response(
            {
                "experiment": ExperimentSerializer(experiment_get(key=key)).data,
                "default_policy": PolicyVersionSerializer(version).data,
            }
        )


class ExperimentResultsApi(_ExperimentsApi):
    @extend_schema(
        operation_id="experiments_results",
        parameters=[KEY, ResultsQuerySerializer],
        responses={
            200: OpenApiResponse(response=RESULTS_SCHEMA, description="The results of the current ramp step."),
            403: FORBIDDEN,
        },
    )
    def get(self, request: Request, key: str) -> Response:
        operator_of(request, write=False)
        query = ResultsQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        experiment = experiment_get(key=key)
        results = experiment_results(experiment)
        body = results_json(results)
        if query.validated_data["over_time"]:
            rows = log_rows(experiment, since=results.since, until=results.until)
            body["effect_over_time"] = effect_over_time(experiment, rows, query.validated_data["over_time"])
        return Response(body)


class DefaultPolicyApi(_ExperimentsApi):
    @extend_schema(operation_id="default_policy_retrieve", responses={200: DefaultPolicySerializer, 403: FORBIDDEN})
    def get(self, request: Request) -> Response:
        operator_of(request, write=False)
        return Response(_default_policy_body())


def _default_policy_body() -> dict[str, Any]:
    policy, version = policy_current()
    history = PolicyVersionSerializer(policy_history(), many=True).data
    return {"policy": policy, "version": version, "history": history}


class DefaultPolicyRollbackApi(_ExperimentsApi):
    @extend_schema(
        operation_id="default_policy_rollback",
        request=None,
        responses={200: DefaultPolicySerializer, 409: CONFLICT},
        description="Serve again the version the current one replaced (as a new version: the history stays).",
    )
    def post(self, request: Request) -> Response:
        services.policy_rollback(actor=operator_of(request, write=True))
        return Response(_default_policy_body())
