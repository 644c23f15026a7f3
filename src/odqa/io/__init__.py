"""Readers and writers: documents, questions, qrels, and atomic file/folder writes."""

from odqa.io.atomic import atomic_dir, atomic_write_text
from odqa.io.documents import read_documents
from odqa.io.questions import Question, read_qrels, read_questions

__all__ = [
    "Question",
    "atomic_dir",
    "atomic_write_text",
    "read_documents",
    "read_qrels",
    "read_questions",
]
