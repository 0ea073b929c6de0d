"""Fixtures of the conversation tests: the stand-in LLM server, with the settings pointing at it."""

from __future__ import annotations

import pytest

from lipsync_worker.conversation.responders.openai import availability_forget

from .llm_standin import STANDIN_MODEL, LLMStandInServer


@pytest.fixture
def llm_server(settings):
    """A stand-in OpenAI-compatible server (`LLMStandInServer`) that the `openai` responder
    talks to: LLM_BASE_URL is its /v1 API base, LLM_MODEL "standin-model", no API key."""
    availability_forget()
    with LLMStandInServer() as server:
        settings.LLM_BASE_URL = server.url + "/v1"
        settings.LLM_MODEL = STANDIN_MODEL
        settings.LLM_API_KEY = ""
        settings.LLM_TIMEOUT = 5.0
        yield server
    availability_forget()
