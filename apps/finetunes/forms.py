from __future__ import annotations

from django import forms

from apps.finetunes.bases import BASES, LOCAL_BASE
from apps.proxy.catalog import FINETUNABLE

UPSTREAM_BASES = list(dict.fromkeys([*FINETUNABLE, "gpt-4.1-2025-04-14", "gpt-3.5-turbo-0125"]))
VALIDATE_FOR = [(LOCAL_BASE, f"{LOCAL_BASE} (local engine)")] + [(m, m) for m in UPSTREAM_BASES]


class UploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL: one example per line, chat or preference (DPO) format.")
    model = forms.ChoiceField(choices=VALIDATE_FOR, initial=LOCAL_BASE, label="Check against base model",
                              help_text="Context limit, image support and training price differ per base model.")


class FromRunsForm(forms.Form):
    filename = forms.CharField(max_length=120, initial="from-chat-runs.jsonl")
    model = forms.ChoiceField(choices=VALIDATE_FOR, initial=LOCAL_BASE, label="Check against base model")
    runs = forms.TypedMultipleChoiceField(coerce=int, choices=[], error_messages={"required": "Tick at least one run."})

    def __init__(self, *args, run_ids: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["runs"].choices = [(r, r) for r in run_ids]


class JobForm(forms.Form):
    model_key = forms.ChoiceField(label="Base model", choices=[])
    training_file = forms.IntegerField(widget=forms.Select)
    validation_file = forms.IntegerField(required=False, widget=forms.Select, help_text="Optional: a held-out file for the validation loss curve.")
    n_epochs = forms.IntegerField(required=False, min_value=1, max_value=50, label="Epochs", help_text="Empty = auto (OpenAI's default).")
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=256, help_text="Empty = auto.")
    learning_rate_multiplier = forms.FloatField(required=False, min_value=0.01, max_value=20, label="Learning-rate multiplier",
                                                help_text="Empty = auto. Local: 1 = a learning rate of 0.001.")
    suffix = forms.RegexField(required=False, max_length=40, regex=r"^[A-Za-z0-9-]*$",
                              error_messages={"invalid": "Letters, digits and dashes only (it becomes part of the model name)."},
                              help_text="Part of the tuned model's name, e.g. support-bot.")
    seed = forms.IntegerField(required=False, help_text="Same seed, same data: same result.")

    def __init__(self, *args, providers, files, local_ready: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        groups = []
        for provider in providers:
            if provider.is_local:
                label = f"{LOCAL_BASE} · LoRA on this CPU, free" + ("" if local_ready else " (needs make finetune-deps)")
                groups.append((provider.name, [(f"{provider.pk}:{LOCAL_BASE}", label)]))
            else:
                options = []
                for model in UPSTREAM_BASES:
                    base = BASES.get(model) or BASES.get(model.rsplit("-", 3)[0])
                    price = f" · ${base.training_per_million}/1M training tokens" if base and base.training_per_million else ""
                    options.append((f"{provider.pk}:{model}", model + price))
                groups.append((provider.name, options))
        self.fields["model_key"].choices = groups
        file_choices = [(f.pk, f"{f.filename} · {f.examples} examples ({f.get_format_display()})") for f in files]
        self.fields["training_file"].widget.choices = file_choices
        self.fields["validation_file"].widget.choices = [("", "None")] + file_choices
