"""agw/_fastjwt.pyi against the compiled module: the same public names both ways, @final where the class cannot be
subclassed, and each attribute the stub types read-only (a property) refusing assignment at run time."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import agw._fastjwt as core
from agw.jwt.errors import results_for_mode

STUB = ast.parse((Path(core.__file__).parent / "_fastjwt.pyi").read_text())
CLASSES = {node.name: node for node in STUB.body if isinstance(node, ast.ClassDef)}


def _decorators(node: ast.AST) -> set[str]:
    return {d.id if isinstance(d, ast.Name) else getattr(d, "attr", "") for d in getattr(node, "decorator_list", [])}


def _stub_names(body: list[ast.stmt]) -> dict[str, str]:
    """name -> "property", "attribute" or "function" for each public name a stub body declares."""
    out = {}
    for node in body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = "property" if "property" in _decorators(node) else "function"
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = "attribute"
        elif isinstance(node, ast.ClassDef):
            out[node.name] = "class"
    return {name: kind for name, kind in out.items() if not name.startswith("_")}


def _instances() -> dict[str, object]:
    provider = core.Provider("https://issuer.test")
    return {
        "AuthResult": core.AuthResult(True), "Pending": core.Pending.__new__(core.Pending),
        "Key": core.Key("k", core.ALG_BITS["HS256"], b"0" * 32, ("oct", "k")), "Provider": provider,
        "CacheEntry": core.CacheEntry.__new__(core.CacheEntry), "TokenCache": core.TokenCache(60.0, True, 10, 10000),
        "Core": core.Core([provider], results_for_mode("strict")),
    }


def test_the_stub_names_every_public_name_of_the_module_and_no_other():
    public = {name for name in dir(core) if not name.startswith("_")}
    assert set(_stub_names(STUB.body)) == public


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_class_has_exactly_the_stubs_attributes(name):
    cls = getattr(core, name)
    runtime = {a for a in dir(cls) if not a.startswith("_")}
    assert set(_stub_names(CLASSES[name].body)) == runtime


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_final_classes_cannot_be_subclassed(name):
    assert "final" in _decorators(CLASSES[name])
    with pytest.raises(TypeError):
        type("Sub", (getattr(core, name),), {})


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_read_only_attributes_refuse_assignment(name):
    instance = _instances()[name]
    for attr, kind in _stub_names(CLASSES[name].body).items():
        if kind == "property":
            with pytest.raises(AttributeError):
                setattr(instance, attr, getattr(instance, attr))
        elif kind == "attribute":
            setattr(instance, attr, getattr(instance, attr))   # typed writable: must be


def test_core_authenticate_is_typed_precisely():
    [method] = [n for n in CLASSES["Core"].body if isinstance(n, ast.FunctionDef) and n.name == "authenticate"]
    assert "Any" not in ast.unparse(method.returns)
