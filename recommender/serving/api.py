from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.authentication import ApiKeyAuthentication, api_key_of
from recommender.serving.answers import recommendation_answer
from recommender.serving.serializers import RecommendationRequestSerializer, RecommendationResponseSerializer


class RecommendationCreateApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    throttle_scope = "recommend"

    @extend_schema(
        request=RecommendationRequestSerializer,
        responses=RecommendationResponseSerializer,
        examples=[
            OpenApiExample(
                "weather",
                request_only=True,
                value={"messages": [{"role": "user", "content": "What's the weather in Paris tomorrow?"}], "k": 3},
            )
        ],
    )
    def post(self, request: Request) -> Response:
        body, result = recommendation_answer(api_key=api_key_of(request), payload=request.data)
        response = Response(body)
        # Standard Server-Timing header: browsers' dev tools and the latency benchmark read it.
        response["Server-Timing"] = ", ".join(f"{name};dur={ms:.2f}" for name, ms in result.timings_ms.items())
        return response
