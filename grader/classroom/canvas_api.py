"""Grades into Canvas through its API (optional; the CSV export needs none of this).

    CANVAS_TOKEN=... python -m grader canvas-upload OUT_DIR --url https://canvas.example.edu --course 101 --assignment 4242

One request (Canvas's bulk grade update, through `canvasapi`) posts every graded student's score,
keyed by Canvas user id (the id in Canvas's download names). The token is read from the
environment, never from the command line (which shell history and `ps` keep).
"""
from typing import Any

from ..report import format_points


class CanvasUploadError(Exception):
    """The upload could not be made: said in one line."""


def upload_grades(url: str, token: str, course_id: int, assignment_id: int, scores: dict[str, float]) -> dict[str, Any]:
    """scores: {Canvas user id: score}. Returns Canvas's progress of the bulk update (a dict)."""
    from canvasapi import Canvas
    from canvasapi.exceptions import CanvasException
    from requests import RequestException

    not_ids = sorted(student for student in scores if not student.isdigit())
    if not_ids:
        raise CanvasUploadError(f"not Canvas user ids (grade a Canvas download for these): {', '.join(not_ids[:10])}")
    try:
        assignment = Canvas(url, token).get_course(course_id).get_assignment(assignment_id)
        progress = assignment.submissions_bulk_update(
            grade_data={student: {"posted_grade": format_points(score)} for student, score in sorted(scores.items())})
    except (CanvasException, RequestException, ValueError) as error:
        raise CanvasUploadError(f"{type(error).__name__}: {error}") from None
    return {"workflow_state": getattr(progress, "workflow_state", None), "url": getattr(progress, "url", None)}
