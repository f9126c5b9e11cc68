from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.authentication import ApiKeyAuthentication, api_key_of
from feedback.answers import feedback_answer
from feedback.serializers import FEEDBACK_REQUEST_SCHEMA, FeedbackResponseSerializer


class FeedbackCreateApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    throttle_scope = "feedback"

    @extend_schema(request=FEEDBACK_REQUEST_SCHEMA, responses={201: FeedbackResponseSerializer})
    def post(self, request: Request) -> Response:
        body = feedback_answer(api_key=api_key_of(request), payload=request.data)
        return Response(body, status=status.HTTP_201_CREATED)
