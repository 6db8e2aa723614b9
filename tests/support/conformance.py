"""Where agentgateway's JWT conformance data lives: in the repository (tests/conformance/), so a fresh clone
runs every conformance test with nothing beside it."""
from __future__ import annotations

from pathlib import Path

AGENTGATEWAY_JWTAUTH = Path(__file__).resolve().parents[1] / "conformance" / "agentgateway-jwtauth"
