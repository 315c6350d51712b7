"""AMA (ask-me-anything) sessions: members ask and upvote, a host answers, a recap closes it."""
