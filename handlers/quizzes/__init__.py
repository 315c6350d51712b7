"""Quizzes (答题): questions with answer buttons, first-K points, quiz sets played as games."""
