"""/api/avatars/{id}/knowledge and /api/avatars/{id}/conversations: thin views over the
conversations app's services and selectors."""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from avatars.serializers import StatusMessageSerializer, input_validate
from avatars.views import query_int

from . import services
from .selectors import (
    conversation_get,
    conversation_list,
    knowledge_avatar_get,
    knowledge_document_get,
    knowledge_document_list,
)
from .serializers import (
    ConversationDetailSerializer,
    ConversationListSerializer,
    ConversationSerializer,
    KnowledgeDocumentCreateSerializer,
    KnowledgeDocumentDetailSerializer,
    KnowledgeDocumentListSerializer,
    KnowledgeDocumentSerializer,
)

PAGE_PARAMETERS = [OpenApiParameter("limit", int), OpenApiParameter("offset", int)]


def _page(request, queryset):
    limit = query_int(request, "limit", 100, 1000)
    offset = query_int(request, "offset", 0, 10**9)
    return queryset[offset : offset + limit], queryset.count()


class KnowledgeListView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="avatars_knowledge_list", parameters=PAGE_PARAMETERS, responses=KnowledgeDocumentListSerializer
    )
    def get(self, request, avatar_id: int):
        documents, total = _page(request, knowledge_document_list(request.user, avatar_id))
        return Response(
            {
                "documents": KnowledgeDocumentSerializer(documents, many=True).data,
                "total": total,
                "max_documents": settings.KNOWLEDGE_MAX_DOCUMENTS,
            }
        )

    @extend_schema(
        request={
            "multipart/form-data": KnowledgeDocumentCreateSerializer,
            "application/json": KnowledgeDocumentCreateSerializer,
        },
        responses={201: KnowledgeDocumentSerializer},
    )
    def post(self, request, avatar_id: int):
        avatar = knowledge_avatar_get(request.user, avatar_id)  # before the body: 404 / 403 come first
        data = input_validate(KnowledgeDocumentCreateSerializer, request.data)
        document = services.knowledge_document_add(avatar, **data)
        return Response(KnowledgeDocumentSerializer(document).data, status=status.HTTP_201_CREATED)


class KnowledgeDetailView(APIView):
    @extend_schema(responses=KnowledgeDocumentDetailSerializer)
    def get(self, request, avatar_id: int, doc_id: int):
        document = knowledge_document_get(request.user, avatar_id, doc_id)
        return Response(KnowledgeDocumentDetailSerializer(document).data)

    @extend_schema(responses=StatusMessageSerializer)
    def delete(self, request, avatar_id: int, doc_id: int):
        document = knowledge_document_get(request.user, avatar_id, doc_id, "manage")
        title = document.title
        services.knowledge_document_delete(document)
        return Response({"status": "success", "message": f"Document '{title}' deleted successfully"})


class ConversationListView(APIView):
    @extend_schema(
        operation_id="avatars_conversations_list", parameters=PAGE_PARAMETERS, responses=ConversationListSerializer
    )
    def get(self, request, avatar_id: int):
        conversations, total = _page(request, conversation_list(request.user, avatar_id))
        return Response({"conversations": ConversationSerializer(conversations, many=True).data, "total": total})


class ConversationDetailView(APIView):
    @extend_schema(responses=ConversationDetailSerializer)
    def get(self, request, avatar_id: int, conversation_id: int):
        conversation = conversation_get(request.user, avatar_id, conversation_id)
        return Response(ConversationDetailSerializer(conversation).data)
