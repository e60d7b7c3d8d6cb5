"""UI → API conversion of real editor files: the default workflow and the 172 workflows of
``comfyui-workflow-templates==0.1.95``, with the node definitions recorded from ComfyUI
v0.3.64. The expected API nodes below were checked by hand against each UI file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Set

import pytest

from comfysync import Workflow, WorkflowFormatError

Loader = Callable[[str], Dict[str, Any]]


def node(class_type: str, title: str, **inputs: Any) -> Dict[str, Any]:
    return {"inputs": inputs, "class_type": class_type, "_meta": {"title": title}}


DEFAULT_API = {
    "3": node(
        "KSampler",
        "KSampler",
        seed=156680208700286,
        steps=20,
        cfg=8,
        sampler_name="euler",
        scheduler="normal",
        denoise=1,
        model=["4", 0],
        positive=["6", 0],
        negative=["7", 0],
        latent_image=["5", 0],
    ),
    "4": node(
        "CheckpointLoaderSimple", "Load Checkpoint", ckpt_name="v1-5-pruned-emaonly.safetensors"
    ),
    "5": node("EmptyLatentImage", "Empty Latent Image", width=512, height=512, batch_size=1),
    "6": node(
        "CLIPTextEncode",
        "Positive prompt",
        text="beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
        clip=["4", 1],
    ),
    "7": node("CLIPTextEncode", "Negative prompt", text="text, watermark", clip=["4", 1]),
    "8": node("VAEDecode", "VAE Decode", samples=["3", 0], vae=["4", 2]),
    "9": node("SaveImage", "Save Image", filename_prefix="ComfyUI", images=["8", 0]),
}


def convert(load: Loader, name: str, node_defs: Dict[str, Any]) -> Dict[str, Any]:
    return Workflow.from_ui(load(name), node_defs).to_dict()


def test_hand_written_default_workflow(
    default_ui: Dict[str, Any], node_defs: Dict[str, Any]
) -> None:
    api = Workflow.from_ui(default_ui, node_defs)
    assert api.to_dict() == DEFAULT_API
    assert api.validate(node_defs) == []
    assert api.output_nodes(node_defs) == ["9"]


def test_template_default(template: Loader, node_defs: Dict[str, Any]) -> None:
    """Old save: the seed's control widget is the legacy boolean; no node titles."""
    api = convert(template, "default.json", node_defs)
    expected = json.loads(json.dumps(DEFAULT_API))
    expected["4"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly-fp16.safetensors"
    expected["6"]["_meta"]["title"] = expected["7"]["_meta"]["title"] = "CLIP Text Encode (Prompt)"
    assert api == expected


def test_template_sdxl_simple_primitives_and_notes(
    template: Loader, node_defs: Dict[str, Any]
) -> None:
    api = convert(template, "sdxl_simple_example.json", node_defs)
    assert set(api) == {
        "4",
        "5",
        "6",
        "7",
        "10",
        "11",
        "12",
        "15",
        "16",
        "17",
        "19",
    }  # 10 notes gone
    positive = "evening sunset scenery blue sky nature, glass bottle with a galaxy in it"
    assert api["10"] == node(
        "KSamplerAdvanced",
        "KSampler (Advanced) - BASE",
        add_noise="enable",
        noise_seed=721897303308196,
        steps=25,
        cfg=8,
        sampler_name="euler",
        scheduler="normal",
        start_at_step=0,
        end_at_step=20,
        return_with_leftover_noise="enable",
        model=["4", 0],
        positive=["6", 0],
        negative=["7", 0],
        latent_image=["5", 0],
    )
    assert api["11"] == node(
        "KSamplerAdvanced",
        "KSampler (Advanced) - REFINER",
        add_noise="disable",
        noise_seed=0,
        steps=25,
        cfg=8,
        sampler_name="euler",
        scheduler="normal",
        start_at_step=20,
        end_at_step=10000,
        return_with_leftover_noise="disable",
        model=["12", 0],
        positive=["15", 0],
        negative=["16", 0],
        latent_image=["10", 0],
    )
    assert api["15"]["inputs"] == {"text": positive, "clip": ["12", 1]}  # primitive 51
    assert api["16"]["inputs"] == {"text": "text, watermark", "clip": ["12", 1]}  # primitive 50
    assert api["17"]["inputs"] == {"samples": ["11", 0], "vae": ["12", 2]}


def test_template_hidream_reroute_and_primitives(
    template: Loader, node_defs: Dict[str, Any]
) -> None:
    api = convert(template, "hidream_e1_1.json", node_defs)
    assert "48" not in api and "56" not in api and "57" not in api
    assert api["49"] == node(
        "BasicScheduler", "BasicScheduler", scheduler="simple", steps=20, denoise=1, model=["55", 0]
    )  # through Reroute 48
    assert api["53"] == node(
        "DualCFGGuider",
        "DualCFGGuider",
        cfg_conds=3,
        cfg_cond2_negative=1.5,
        style="regular",
        model=["55", 0],
        cond1=["52", 0],
        cond2=["52", 1],
        negative=["6", 0],
    )
    assert api["47"]["inputs"] == {"noise_seed": 567500569211369}
    assert api["6"]["_meta"]["title"] == "Positive"


def test_template_hunyuan_video_muted_node(template: Loader, node_defs: Dict[str, Any]) -> None:
    api = convert(template, "hunyuan_video_text_to_video.json", node_defs)
    assert "8" not in api  # the muted VAEDecode
    assert set(api) == {
        "10",
        "11",
        "12",
        "13",
        "16",
        "17",
        "22",
        "25",
        "26",
        "44",
        "45",
        "67",
        "73",
        "79",
        "80",
    }
    assert api["73"] == node(
        "VAEDecodeTiled",
        "VAE Decode (Tiled)",
        tile_size=256,
        overlap=64,
        temporal_size=64,
        temporal_overlap=8,
        samples=["13", 0],
        vae=["10", 0],
    )
    assert api["79"]["inputs"] == {"fps": 24, "images": ["73", 0]}  # optional audio unlinked
    assert api["80"]["inputs"] == {
        "filename_prefix": "video/ComfyUI",
        "format": "auto",
        "codec": "auto",
        "video": ["79", 0],
    }


def test_template_lora_bypassed_node(template: Loader, node_defs: Dict[str, Any]) -> None:
    api = convert(template, "lora.json", node_defs)
    assert "13" not in api  # the bypassed second LoraLoader
    assert api["3"]["inputs"]["model"] == ["11", 0]
    assert api["6"]["inputs"]["clip"] == ["11", 1]
    assert api["7"]["inputs"]["clip"] == ["11", 1]
    assert api["11"] == node(
        "LoraLoader",
        "Load LoRA",
        lora_name="blindbox_v1_mix.safetensors",
        strength_model=0.75,
        strength_clip=1,
        model=["4", 0],
        clip=["4", 1],
    )
    assert api["3"]["inputs"]["seed"] == 261660645921551
    assert api["9"]["inputs"]["filename_prefix"] == "2loras_test_"


def test_template_tripo_converted_widget(template: Loader, node_defs: Dict[str, Any]) -> None:
    api = convert(template, "api_tripo_image_to_model.json", node_defs)
    assert api == {
        "51": node("Preview3D", "Preview 3D", model_file=["35", 0]),  # widget → socket
        "35": node(
            "TripoImageToModelNode",
            "Tripo: Image to Model",
            model_version="v2.5-20250123",
            style="None",
            texture=True,
            pbr=True,
            model_seed=42,
            orientation="default",
            texture_seed=42,
            texture_quality="standard",
            texture_alignment="original_image",
            face_limit=-1,
            quad=False,
            image=["36", 0],
        ),
        "36": node("LoadImage", "Load Image", image="panda.webp"),
    }


def test_template_flux_redux_primitives_into_converted_widgets(
    template: Loader, node_defs: Dict[str, Any]
) -> None:
    api = convert(template, "flux_redux_model_example.json", node_defs)
    assert not {"34", "35", "45", "46", "47"} & set(api)  # primitives and bypassed nodes
    assert api["27"]["inputs"] == {"width": 1024, "height": 1024, "batch_size": 1}
    assert api["30"]["inputs"] == {
        "max_shift": 1.15,
        "base_shift": 0.5,
        "width": 1024,
        "height": 1024,
        "model": ["12", 0],
    }
    assert api["22"]["inputs"] == {"model": ["30", 0], "conditioning": ["41", 0]}  # via 45


def test_template_onereward_subgraph(template: Loader, node_defs: Dict[str, Any]) -> None:
    api = convert(template, "image_flux.1_fill_dev_OneReward.json", node_defs)
    assert "48" not in api
    assert api["48:199"] == node(
        "GrowMask", "GrowMask", expand=0, tapered_corners=True, mask=["17", 1]
    )
    assert api["48:251"] == node("MaskToImage", "Convert Mask to Image", mask=["48:199", 0])
    assert api["48:252"] == node(
        "ImageBlur", "ImageBlur", blur_radius=31, sigma=1, image=["48:251", 0]
    )
    assert api["48:253"] == node(
        "ImageToMask", "Convert Image to Mask", channel="red", image=["48:252", 0]
    )
    assert api["49"]["inputs"] == {"mask": ["48:253", 0]}
    assert api["50"]["inputs"]["mask"] == ["48:253", 0]
    # saved before DifferentialDiffusion had "strength": the default fills in
    assert api["39"]["inputs"] == {"strength": 1.0, "model": ["100", 0]}
    assert not any(_mode_ids(template("image_flux.1_fill_dev_OneReward.json"), 4) & set(api))


def test_template_uso_bypassed_subgraphs(template: Loader, node_defs: Dict[str, Any]) -> None:
    api = convert(template, "flux1_dev_uso_reference_image_gen.json", node_defs)
    assert not {"56", "83", "89"} & set(api)
    assert not [k for k in api if k.startswith(("56:", "83:", "89:"))]
    # EasyCache ← bypassed subgraph 56 (MODEL passes from its "model" input) ← subgraph 55
    assert api["95"]["inputs"]["model"] == ["55:54", 0]
    assert api["55:52"] == node(
        "CLIPVisionEncode",
        "CLIP Vision Encode",
        crop="center",
        clip_vision=["40", 0],
        image=["53", 0],
    )
    assert api["55:54"] == node(
        "USOStyleReference",
        "USOStyleReference",
        model=["43", 0],
        model_patch=["39", 0],
        clip_vision_output=["55:52", 0],
    )
    assert api["57:35"] == node(
        "FluxGuidance", "FluxGuidance", guidance=3.5, conditioning=["57:41", 0]
    )
    assert api["57:44"]["inputs"] == {"conditioning": ["6", 0], "latent": ["51", 0]}
    assert api["31"]["inputs"]["positive"] == ["57:35", 0]


def test_template_wan_s2v_subgraph_inputs(template: Loader, node_defs: Dict[str, Any]) -> None:
    api = convert(template, "video_wan2_2_14B_s2v.json", node_defs)
    # instance 85: seed/sampler/scheduler promoted (85's own value 250, not the inner 1),
    # steps/cfg/length linked from primitive nodes outside the subgraph
    assert api["85:77"] == node(
        "KSampler",
        "KSampler",
        seed=250,
        steps=["103", 0],
        cfg=["105", 0],
        sampler_name="uni_pc",
        scheduler="simple",
        denoise=1,
        model=["54", 0],
        positive=["85:76", 0],
        negative=["85:76", 1],
        latent_image=["85:76", 2],
    )
    assert api["85:76"]["inputs"] == {
        "length": ["104", 0],
        "positive": ["6", 0],
        "negative": ["7", 0],
        "vae": ["39", 0],
        "video_latent": ["79:78", 0],
        "audio_encoder_output": ["56", 0],
        "ref_image": ["52", 0],
    }
    assert api["79:77"]["inputs"]["seed"] == 1
    assert api["85:78"]["inputs"] == {
        "dim": "t",
        "samples1": ["79:78", 0],
        "samples2": ["85:77", 0],
    }


def _mode_ids(ui: Dict[str, Any], mode: int) -> Set[str]:
    return {str(n["id"]) for n in ui["nodes"] if n.get("mode") == mode}


# ---------------------------------------------------------------- refusals of real files


@pytest.mark.parametrize(
    "name, words",
    [
        (
            "video_wan2_2_14B_animate.json",
            [
                "node 100 (class 'DWPreprocessor')",
                "node 108 (class 'DownloadAndLoadSAM2Model')",
                "install the custom nodes",
            ],
        ),
        (
            "api_stability_ai_audio_to_audio.json",
            ["node 9 (class 'RecordAudio')", "'audio' (AUDIO_RECORD) is filled in by the editor"],
        ),
        (
            "api_rodin_gen2.json",
            ["node 67 (class 'Rodin3D_Gen2')", "0 does not fit input 'TAPose' (BOOLEAN)"],
        ),
        (
            "api_moonvalley_video_to_video_motion_transfer.json",
            [
                "node 38 (class 'MoonvalleyVideo2VideoNode')",
                "'randomize' does not fit input 'steps'",
            ],
        ),
    ],
)
def test_templates_that_are_refused(
    template: Loader, node_defs: Dict[str, Any], name: str, words: List[str]
) -> None:
    with pytest.raises(WorkflowFormatError) as err:
        convert(template, name, node_defs)
    for word in words:
        assert word in str(err.value)


# ---------------------------------------------------------------- all of them


def _all_templates(templates_path: Path) -> List[Path]:
    paths = []
    for path in sorted(templates_path.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("nodes"), list):
            paths.append(path)
    return paths


_STRUCTURAL = (
    "Exception when validating",
    "Return type mismatch",
    "Bad linked input",
    "does not exist",
    "missing the class_type",
)


def test_every_template_converts_or_is_refused_clearly(
    node_defs: Dict[str, Any], templates_path: Path
) -> None:
    paths = _all_templates(templates_path)
    assert len(paths) >= 170
    converted, refused = 0, []
    for path in paths:
        ui = json.loads(path.read_text(encoding="utf-8"))
        try:
            wf = Workflow.from_ui(ui, node_defs)
        except WorkflowFormatError as exc:
            message = str(exc)
            assert "node " in message, (path.name, message)  # names the node at fault
            refused.append(path.name)
            continue
        converted += 1
        # links point at emitted nodes and real outputs of the right type
        problems = [p for p in wf.validate(node_defs) if p.startswith("node ")]
        assert not [p for p in problems if any(s in p for s in _STRUCTURAL)], (path.name, problems)
        for entry in wf.to_dict().values():
            assert isinstance(entry["_meta"]["title"], str) and entry["_meta"]["title"]
    assert converted >= 160, refused
    assert len(refused) <= 10, refused
