"""FiftyOne plugin "@fxaug/expression": the App operator `transfer_expression`.

It runs fxaug's ExpressionPipeline on the source faces of the selected samples' groups (all
samples of the current view when none is selected) and adds each result to its group as a
new slice named after the target. The work is `fxaug.integrations.fiftyone.transfer_expression`;
this module only describes the form and calls it.

FiftyOne imports this file by path from its plugins directory (so no relative imports). To
make the App list the operator, either

    fxaug fiftyone --install-plugin          # links this folder into fo.config.plugins_dir

or point FIFTYONE_PLUGINS_DIR at the folder holding this one (`fxaug fiftyone --plugin-path`
prints it). Delegated execution is allowed: generating many faces can run in
`fiftyone delegated launch` instead of the App's request, and reports its progress (faces done,
added, without a face) after every batch through `ctx.set_progress`.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fxaug import emotions as E
from fxaug.integrations.fiftyone import transfer_expression

METHODS = ("model's own", "image", "face", "parts")


class TransferExpression(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="transfer_expression",
            label="fxaug: transfer expression",
            description="Give the source faces of the selected groups a target expression; "
            "each result is added to its group as a new slice",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        count = len(ctx.selected) if ctx.selected else len(ctx.view)
        where = "selected samples" if ctx.selected else "samples in the current view (select some to narrow it)"
        inputs.md(f"Transfers the source face of each group of the **{count}** {where}.", name="scope")
        inputs.enum("target", list(E.EMOTIONS), required=True, default="happy", label="Target expression",
                    view=types.DropdownView())
        inputs.enum("method", list(METHODS), default=METHODS[0], label="Method", view=types.DropdownView())
        inputs.float("strength", default=1.0, min=0.0, max=1.0, label="Strength",
                     description="0 = unchanged, 1 = the generator's full change")
        inputs.str("model", default=ctx.dataset.info.get("fxaug_model") or "", label="Model",
                   description="a shipped model's name or a checkpoint folder (empty: the dataset's "
                   "generator, else a shipped one that can)")
        return types.Property(inputs, view=types.View(label="fxaug: transfer expression"))

    def execute(self, ctx):
        ids = list(ctx.selected) or ctx.view.values("id")
        method = ctx.params.get("method")
        result = transfer_expression(
            ctx.dataset, ids, ctx.params["target"], model=ctx.params.get("model") or None,
            method=None if method in (None, METHODS[0]) else method, strength=float(ctx.params.get("strength", 1.0)),
            # FiftyOne records it on a delegated run (the App's Runs page, `fiftyone delegated list`)
            # and logs it to the browser console on an immediate one
            progress=lambda share, label: ctx.set_progress(progress=share, label=label),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return result

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("added", label="Faces added")
        outputs.int("no_face", label="No face found (nothing added)")
        outputs.int("already", label="Already in the dataset")
        outputs.list("slices", types.String(), label="Slices written")
        return types.Property(outputs)


def register(plugin):
    plugin.register(TransferExpression)
