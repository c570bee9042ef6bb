"""Feedback, labels, thresholds, drift reports, retraining and the model registry. Thin: validation in
serializers, work in services. Feedback and labels are triage work; threshold and model actions need
`admin`; reads need `read`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pulse.lib.errors import error_body
from pulse.lib.pagination import keyset_page, page_response

from . import selectors, services
from .models import DriftReport, Label, RetrainJob, Threshold, ThresholdChange

ADMIN_ACTION = {"POST": "admin"}


def _failed(exc: services.LearningError) -> Response:
    code = {404: "not_found", 409: "conflict"}.get(exc.status, "invalid")
    return Response(error_body(code, str(exc)), status=exc.status)


# ----------------------------------------------------------------------------- feedback and labels

class FeedbackSerializer(serializers.Serializer):
    label = serializers.ChoiceField(choices=sorted(services.FEEDBACK_LABELS))
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class AnomalyFeedbackView(APIView):
    required_scopes = {"POST": "triage"}

    @extend_schema(request=FeedbackSerializer, responses={200: dict})
    def post(self, request: Request, pk: int) -> Response:
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            anomaly = services.anomaly_feedback_give(anomaly_id=pk, label=serializer.validated_data["label"],
                                                     note=serializer.validated_data["note"], by=str(request.user))
        except services.LearningError as exc:
            return _failed(exc)
        return Response({"id": anomaly.pk, "feedback": anomaly.feedback})


class LabelItemSerializer(serializers.Serializer):
    event_id = serializers.CharField(max_length=128)
    label = serializers.ChoiceField(choices=Label.Value.choices)
    known_at = serializers.DateTimeField(required=False)


class LabelsSerializer(serializers.Serializer):
    labels = LabelItemSerializer(many=True, allow_empty=False, max_length=services.MAX_LABELS_PER_REQUEST)


class LabelsView(APIView):
    """Bulk ground truth by event id (a chargeback file days later). Labels of events that were
    never flagged count as `missed`."""

    required_scopes = {"POST": "triage"}

    @extend_schema(request=LabelsSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        serializer = LabelsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            counts = services.labels_ingest(labels=serializer.validated_data["labels"], by=str(request.user))
        except services.LearningError as exc:
            return _failed(exc)
        return Response(counts)


# ----------------------------------------------------------------------------- thresholds

class ThresholdChangeSerializer(serializers.ModelSerializer):
    detector = serializers.CharField(source="threshold.detector")
    metric = serializers.CharField(source="threshold.metric")
    rolled_back_by = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = ThresholdChange
        fields = ["id", "detector", "metric", "action", "old_value", "new_value", "mode", "reason",
                  "expected_before", "expected_after", "details", "by", "rolled_back_by", "created_at"]


class ThresholdSerializer(serializers.ModelSerializer):
    last_change = serializers.SerializerMethodField()

    class Meta:
        model = Threshold
        fields = ["id", "detector", "metric", "value", "pinned", "pinned_by", "updated_at", "last_change"]

    def get_last_change(self, row: Threshold) -> dict[str, Any] | None:
        change = row.changes.order_by("-id").first()
        return ThresholdChangeSerializer(change).data if change else None


class ThresholdsView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(responses=ThresholdSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response({"results": ThresholdSerializer(selectors.thresholds_list(), many=True).data})


class ThresholdHistoryView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(responses=ThresholdChangeSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = selectors.threshold_changes(detector=request.query_params.get("detector") or None,
                                           metric=request.query_params.get("metric") or None)
        page, cursor = keyset_page(rows, request, time_field="created_at")
        return Response(page_response(request, ThresholdChangeSerializer(page, many=True).data, cursor))


class PinSerializer(serializers.Serializer):
    value = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    pinned = serializers.BooleanField(required=False, default=True)


class ThresholdPinView(APIView):
    """Pin a threshold (optionally to a value) or release it (`{"pinned": false}`)."""

    required_scopes = ADMIN_ACTION

    @extend_schema(request=PinSerializer, responses=ThresholdSerializer)
    def post(self, request: Request, pk: int) -> Response:
        row = Threshold.objects.filter(pk=pk).first()
        if row is None:
            return Response(error_body("not_found", "No such threshold."), status=status.HTTP_404_NOT_FOUND)
        serializer = PinSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            row = services.threshold_pin(detector=row.detector, metric=row.metric, by=str(request.user),
                                         value=serializer.validated_data.get("value"),
                                         pinned=serializer.validated_data["pinned"])
        except services.LearningError as exc:
            return _failed(exc)
        return Response(ThresholdSerializer(row).data)


class ThresholdRollbackView(APIView):
    """Undo one recorded change (the threshold returns to its old value and is pinned)."""

    required_scopes = ADMIN_ACTION

    @extend_schema(request=None, responses=ThresholdChangeSerializer)
    def post(self, request: Request, pk: int) -> Response:
        try:
            undo = services.threshold_rollback(change_id=pk, by=str(request.user))
        except services.LearningError as exc:
            return _failed(exc)
        return Response(ThresholdChangeSerializer(undo).data)


class RecalibrateView(APIView):
    """Run the recalibration now (what the hourly beat does)."""

    required_scopes = ADMIN_ACTION

    @extend_schema(request=None, responses=ThresholdChangeSerializer(many=True))
    def post(self, request: Request) -> Response:
        changes = services.thresholds_recalibrate()
        return Response({"changes": ThresholdChangeSerializer(changes, many=True).data})


# ----------------------------------------------------------------------------- drift

class DriftReportSerializer(serializers.ModelSerializer):
    retrain_job = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = DriftReport
        fields = ["id", "created_at", "model_version", "level", "reference_from", "reference_to", "recent_from",
                  "recent_to", "n_reference", "n_recent", "score", "features", "notes", "anomaly_id", "retrain_job"]


class DriftReportsView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(responses=DriftReportSerializer(many=True))
    def get(self, request: Request) -> Response:
        page, cursor = keyset_page(selectors.drift_reports(), request, time_field="created_at")
        return Response(page_response(request, DriftReportSerializer(page, many=True).data, cursor))


# ----------------------------------------------------------------------------- models

class ModelVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    metrics = serializers.JSONField()
    training_from = serializers.DateTimeField()
    training_to = serializers.DateTimeField()
    features = serializers.JSONField()
    code_version = serializers.CharField()
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()
    promoted_at = serializers.DateTimeField()
    notes = serializers.CharField()


class RetrainJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = RetrainJob
        fields = ["id", "status", "trigger", "requested_by", "cutoff", "champion_version", "model_version", "promoted",
                  "verdict", "metrics", "error", "created_at", "started_at", "finished_at"]


class ModelsView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(responses=ModelVersionSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response({"results": ModelVersionSerializer(selectors.models_list(), many=True).data})


class ModelPromoteView(APIView):
    required_scopes = ADMIN_ACTION

    @extend_schema(request=None, responses=ModelVersionSerializer)
    def post(self, request: Request, version: int) -> Response:
        try:
            row = services.model_promote_request(version=version, by=str(request.user))
        except services.LearningError as exc:
            return _failed(exc)
        return Response(ModelVersionSerializer(row).data)


class ModelRollbackView(APIView):
    required_scopes = ADMIN_ACTION

    @extend_schema(request=None, responses=ModelVersionSerializer)
    def post(self, request: Request) -> Response:
        try:
            row = services.model_rollback_request(by=str(request.user))
        except services.LearningError as exc:
            return _failed(exc)
        return Response(ModelVersionSerializer(row).data)


class RetrainView(APIView):
    """`POST` queues a retraining job (202); `GET` lists the jobs."""

    required_scopes = {"GET": "read", "POST": "admin"}

    @extend_schema(responses=RetrainJobSerializer(many=True))
    def get(self, request: Request) -> Response:
        page, cursor = keyset_page(selectors.retrain_jobs(), request, time_field="created_at")
        return Response(page_response(request, RetrainJobSerializer(page, many=True).data, cursor))

    @extend_schema(request=None, responses={202: RetrainJobSerializer})
    def post(self, request: Request) -> Response:
        job = services.retrain_request(trigger=RetrainJob.Trigger.REQUEST, by=str(request.user))
        return Response(RetrainJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
