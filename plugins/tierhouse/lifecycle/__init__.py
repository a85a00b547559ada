"""A list's life after grading: recording and publishing, review, appeals, quarterly re-grades, history."""
