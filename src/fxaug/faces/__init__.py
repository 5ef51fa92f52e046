"""Face analysis for fxaug. See docs/faces.md.

Modules: `detection` (YuNet).
"""

from __future__ import annotations

from .detection import Detection, Face, FaceDetector

__all__ = ["Detection", "Face", "FaceDetector"]
