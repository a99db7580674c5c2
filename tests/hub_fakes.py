"""Fakes of the `HfApi` methods a push calls, each bound to the real signature (shared by the Hub push tests)."""

from huggingface_hub import HfApi
from signatures import patch_bound


def fake_hub_pushes(monkeypatch, calls: list) -> None:
    """`HfApi.create_repo`, `upload_folder` and `create_commit` recording their calls, bound to the real signatures."""

    def create_repo(api, repo_id, *, private=None, exist_ok=False, repo_type=None):
        calls.append(("create_repo", repo_id, {"private": private, "exist_ok": exist_ok}))
        return f"https://hub.example/{repo_id}"

    def upload_folder(
        api, *, repo_id, folder_path, path_in_repo=None, commit_message=None, delete_patterns=None, repo_type=None
    ):
        calls.append(("upload_folder", {"repo_id": repo_id, "folder_path": folder_path, "path_in_repo": path_in_repo,
                                        "delete_patterns": delete_patterns}))  # fmt: skip

    def create_commit(api, repo_id, operations, *, commit_message):
        calls.append(("create_commit", {"repo_id": repo_id, "operations": operations}))

    for name, fake in (
        ("create_repo", create_repo),
        ("upload_folder", upload_folder),
        ("create_commit", create_commit),
    ):
        patch_bound(monkeypatch, HfApi, name, fake)
