from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.authentication import ApiKeyAuthentication, api_key_of
from feedback.serializers import FEEDBACK_REQUEST_SCHEMA, FeedbackRequestSerializer, FeedbackResponseSerializer
from feedback.services import FeedbackItem, feedback_record


class FeedbackCreateApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    throttle_scope = "feedback"

    @extend_schema(request=FEEDBACK_REQUEST_SCHEMA, responses={201: FeedbackResponseSerializer})
    def post(self, request: Request) -> Response:
        serializer = FeedbackRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        outcome = feedback_record(
            api_key=api_key_of(request),
            recommendation_id=data["recommendation_id"],
            items=[
                FeedbackItem(tool=e["tool"], used=e["used"], reward=e.get("reward"), event_id=e.get("event_id"))
                for e in data["events"]
            ],
        )
        return Response(
            {"recorded": outcome.recorded, "duplicates": outcome.duplicates}, status=status.HTTP_201_CREATED
        )
