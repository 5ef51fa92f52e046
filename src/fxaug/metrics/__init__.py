"""Metrics of expression transfer: the emotion judge (and, as they land, FID/KID and identity)."""

from .judge import DEFAULT_JUDGE, EmotionJudge, JudgeConfig, load_judge

__all__ = ["DEFAULT_JUDGE", "EmotionJudge", "JudgeConfig", "load_judge"]
