"""Tenant, key, status and token endpoints. Thin: validation in serializers, work in services."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.db import IntegrityError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from pulse.lib.health import run_checks

from .config import ConfigError, config_validate
from .models import ApiKey, Plan, Tenant, validate_currency, validate_slug, validate_timezone
from .selectors import membership_role, tenant_for_slug
from .services import api_key_create, api_key_revoke, tenant_create


def _django_validator(fn):  # type: ignore[no-untyped-def]
    from django.core.exceptions import ValidationError as DjangoValidationError

    def run(value: Any) -> None:
        try:
            fn(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    return run


class TenantCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.CharField(max_length=41, validators=[_django_validator(validate_slug)])
    plan = serializers.SlugRelatedField(slug_field="code", queryset=Plan.objects.all(), default="free")
    timezone = serializers.CharField(max_length=64, default="UTC", validators=[_django_validator(validate_timezone)])
    currency = serializers.CharField(max_length=3, default="USD", validators=[_django_validator(validate_currency)])
    config = serializers.JSONField(required=False, default=dict)

    def validate_slug(self, value: str) -> str:
        if Tenant.objects.filter(slug=value).exists():
            raise serializers.ValidationError("A tenant with this slug exists.")
        return value

    def validate_config(self, value: Any) -> Any:
        try:
            return config_validate(value)
        except ConfigError as exc:
            raise serializers.ValidationError(exc.messages) from exc


class TenantSerializer(serializers.ModelSerializer):
    plan = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "plan", "timezone", "currency", "is_active", "config", "created_at"]
        read_only_fields = ["id", "slug", "plan", "is_active", "created_at"]

    def validate_config(self, value: Any) -> Any:
        try:
            return config_validate(value)
        except ConfigError as exc:
            raise serializers.ValidationError(exc.messages) from exc


class TenantsView(APIView):
    """Platform administration: create tenants (the first API key is returned once) and list them."""

    required_scopes = {"GET": "platform", "POST": "platform"}

    @extend_schema(responses=TenantSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(TenantSerializer(Tenant.objects.all(), many=True).data)

    @extend_schema(request=TenantCreateSerializer, responses={201: dict})
    def post(self, request: Request) -> Response:
        serializer = TenantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            tenant, raw_key = tenant_create(
                slug=data["slug"], name=data["name"], plan=data["plan"].code, timezone_name=data["timezone"],
                currency=data["currency"], config=data["config"], created_by=str(request.user),
            )
        except IntegrityError:
            raise serializers.ValidationError({"slug": ["A tenant with this slug exists."]}) from None
        return Response({"id": tenant.pk, "slug": tenant.slug, "api_key": raw_key}, status=status.HTTP_201_CREATED)


class CurrentTenantView(APIView):
    """The caller's tenant and its configuration; admins may change name, time zone, currency, config."""

    required_scopes = {"GET": "read", "PATCH": "admin"}

    @extend_schema(responses=TenantSerializer)
    def get(self, request: Request) -> Response:
        return Response(TenantSerializer(request._request.tenant).data)

    @extend_schema(request=TenantSerializer, responses=TenantSerializer)
    def patch(self, request: Request) -> Response:
        tenant = Tenant.objects.get(pk=request._request.tenant.pk)
        serializer = TenantSerializer(tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class ApiKeySerializer(serializers.ModelSerializer):
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKey.Scope.choices), allow_empty=False)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "created_at", "created_by", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "created_by", "last_used_at", "revoked_at"]


class ApiKeysView(APIView):
    required_scopes = {"GET": "admin", "POST": "admin"}

    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request: Request) -> Response:
        keys = ApiKey.objects.filter(tenant=request._request.tenant)
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(request=ApiKeySerializer, responses={201: dict})
    def post(self, request: Request) -> Response:
        serializer = ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, raw = api_key_create(tenant=request._request.tenant, name=serializer.validated_data["name"],
                                  scopes=serializer.validated_data["scopes"], created_by=str(request.user))
        return Response({**ApiKeySerializer(key).data, "api_key": raw}, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    required_scopes = {"DELETE": "admin"}

    def delete(self, request: Request, pk: int) -> Response:
        key = get_object_or_404(ApiKey, pk=pk, tenant=request._request.tenant)
        api_key_revoke(key=key)
        return Response(ApiKeySerializer(key).data)


class StatusView(APIView):
    """Health of the platform as seen by this tenant: database, Redis, workers, queue depth, ingest lag."""

    required_scopes = {"GET": "any"}

    def get(self, request: Request) -> Response:
        checks = run_checks()
        healthy = all(check["ok"] for check in checks.values())
        tenant = request._request.tenant
        return Response({"status": "ok" if healthy else "degraded", "tenant": tenant.slug, "checks": checks})


class TokenSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
    tenant = serializers.CharField(help_text="tenant slug")


class TokenView(APIView):
    """JWT pair for a person, valid for one tenant they belong to."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=TokenSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        serializer = TokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = authenticate(request._request, username=data["username"], password=data["password"])
        tenant = tenant_for_slug(data["tenant"])
        role = membership_role(user=user, tenant=tenant) if user and tenant else None
        if role is None:
            return Response({"error": "authentication_failed", "detail": "Wrong credentials or no access to this tenant."},
                            status=status.HTTP_401_UNAUTHORIZED)
        refresh = RefreshToken.for_user(user)
        refresh["tenant"] = tenant.slug
        refresh["role"] = role
        access = refresh.access_token
        return Response({"access": str(access), "refresh": str(refresh), "tenant": tenant.slug, "role": role})


class TokenRefreshView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        from rest_framework_simplejwt.exceptions import TokenError

        try:
            refresh = RefreshToken(request.data.get("refresh", ""))
        except TokenError as exc:
            return Response({"error": "invalid_token", "detail": str(exc)}, status=status.HTTP_401_UNAUTHORIZED)
        access = refresh.access_token
        for claim in ("tenant", "role"):
            access[claim] = refresh.get(claim)
        return Response({"access": str(access)})


