"""Per-episode domain randomization of a Meta-World scene, without recompiling it.

Everything randomization needs is added to the model once, through :class:`mujoco.MjSpec`,
before it is compiled (:func:`augment_spec`): a camera looking at the table, one texture and
material each for table, floor and a backdrop wall, and a pool of visual-only distractor
geoms (``contype = conaffinity = 0``, so they can never touch the physics). Each reset then
samples a JSON-able parameter dict (:func:`sample_randomization`) and writes it into the
compiled model in place (:meth:`SceneRandomizer.apply`): ``geom_matid``, ``geom_rgba``,
``mat_rgba``, light fields, ``cam_pos/quat/fovy`` and texture pixels, the latter re-uploaded
to the render context with ``mjr_uploadTexture``. A reset costs about a millisecond instead
of the ~650 ms of a recompile.

Written by hand because no library randomizes a compiled MuJoCo model in place; the
procedural textures are a few lines of numpy each.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from lamp_data.envs.base import RandomizationConfig
from lamp_data.errors import LampError

TEXTURE_SIZE = 128
"""Side in pixels of the randomized table, floor and wall textures."""
DISTRACTOR_POOL = 6
"""Distractor geoms added to every scene; ``max_distractors`` may not exceed it."""
SURFACES = ("table", "floor", "wall")
"""Surfaces whose texture is randomized."""
PROCEDURAL_KINDS = ("checker", "stripes", "noise", "gradient", "plain")
"""Procedural texture generators (besides Meta-World's photo textures)."""
HIDDEN_GROUP = 5
"""Geom group of the backdrop wall; shown only when textures are randomized."""

CAMERA_NAME = "lamp_view"
GOAL_MARKER_NAME = "lamp_goal_marker"
"""A sphere that marks the goal of tasks whose goal nothing else shows (``EnvConfig.goal_marker``);
transparent, and out of sight, unless the env places it."""
GOAL_MARKER_RADIUS = 0.04
"""Metres: about the distance within which Meta-World counts an object (or the hand) at its goal."""
GOAL_MARKER_RGB = (1.0, 0.1, 0.1)
GOAL_MARKER_ALPHA = 0.5
"""Half transparent, so that an object inside the marker stays in sight."""
CAMERA_LOOKAT = (0.0, 0.6, 0.12)
"""Point on the table the camera looks at (metres, world frame)."""
CAMERA_DISTANCE = 1.35
CAMERA_AZIMUTH = -60.0
"""Degrees; the camera sits across the table from the robot, to its right, facing it."""
CAMERA_ELEVATION = -35.0
CAMERA_FOVY = 45.0

_DISTRACTOR_TYPES = {
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "ellipsoid": mujoco.mjtGeom.mjGEOM_ELLIPSOID,
}
_TABLE_BODIES = ("tablelink",)
_WALL_BODIES = ("RetainingWall",)
_ROBOT_ROOT = "base"


def camera_pose(lookat, distance: float, azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray]:
    """Position and quaternion of a camera orbiting ``lookat`` (MuJoCo's free-camera angles).

    Args:
        lookat: Point the camera looks at.
        distance: Distance from ``lookat`` in metres.
        azimuth: Degrees around the vertical axis.
        elevation: Degrees above (positive) or below (negative) the horizontal.

    Returns:
        ``(pos, quat)`` for ``model.cam_pos`` / ``model.cam_quat`` of a camera on the world body.
    """
    azimuth_rad, elevation_rad = math.radians(azimuth), math.radians(elevation)
    forward = np.array(
        [
            math.cos(elevation_rad) * math.cos(azimuth_rad),
            math.cos(elevation_rad) * math.sin(azimuth_rad),
            math.sin(elevation_rad),
        ]
    )
    position = np.asarray(lookat, float) - distance * forward
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rotation = np.stack([right, up, -forward], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rotation.ravel())
    return position, quat


def augment_spec(spec: mujoco.MjSpec, image_size: int) -> None:
    """Add the camera, randomizable textures/materials, backdrop and distractor pool to ``spec``.

    Also turns off multisampling, drops the shadow map (64 MB at Meta-World's 4096 px) and sizes
    the offscreen buffer to the image, so rendering is fast and a renderer costs little memory.
    """
    spec.visual.quality.offsamples = 0
    spec.visual.quality.shadowsize = 0
    spec.visual.global_.offwidth = image_size
    spec.visual.global_.offheight = image_size
    for surface in SURFACES:
        texture = spec.add_texture()
        texture.name = f"lamp_tex_{surface}"
        texture.type = mujoco.mjtTexture.mjTEXTURE_2D
        texture.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
        texture.width = TEXTURE_SIZE
        texture.height = TEXTURE_SIZE
        texture.rgb1 = [0.5, 0.5, 0.5]
        texture.rgb2 = [0.6, 0.6, 0.6]
        material = spec.add_material()
        material.name = f"lamp_mat_{surface}"
        material.textures = ["", f"lamp_tex_{surface}"]
        material.texrepeat = [6, 6] if surface == "floor" else [2, 2]
        material.texuniform = surface == "floor"
        material.specular = 0.2
        material.shininess = 0.1
    backdrop = spec.worldbody.add_geom()
    backdrop.name = "lamp_backdrop"
    backdrop.type = mujoco.mjtGeom.mjGEOM_BOX
    backdrop.size = [2.0, 0.02, 1.5]
    backdrop.pos = [0.0, -0.8, 0.3]
    backdrop.contype = 0
    backdrop.conaffinity = 0
    backdrop.group = HIDDEN_GROUP
    backdrop.material = "lamp_mat_wall"
    for index in range(DISTRACTOR_POOL):
        geom = spec.worldbody.add_geom()
        geom.name = f"lamp_distractor{index}"
        geom.type = mujoco.mjtGeom.mjGEOM_SPHERE
        geom.size = [0.03, 0.03, 0.03]
        geom.pos = [0.0, 0.0, -5.0]
        geom.rgba = [0.5, 0.5, 0.5, 0.0]
        geom.contype = 0
        geom.conaffinity = 0
        geom.group = 1
    marker = spec.worldbody.add_geom()
    marker.name = GOAL_MARKER_NAME
    marker.type = mujoco.mjtGeom.mjGEOM_SPHERE
    # compiled inside the distractors' bounds, so that the model's extent (and with it the clip
    # planes of every frame) is what it was without the marker; the env sizes it when it places it
    marker.size = [0.03, 0.03, 0.03]
    marker.pos = [0.0, 0.0, -5.0]
    marker.rgba = [*GOAL_MARKER_RGB, 0.0]
    marker.contype = 0
    marker.conaffinity = 0
    marker.group = 1
    camera = spec.worldbody.add_camera()
    camera.name = CAMERA_NAME
    position, quat = camera_pose(CAMERA_LOOKAT, CAMERA_DISTANCE, CAMERA_AZIMUTH, CAMERA_ELEVATION)
    camera.pos = position
    camera.quat = quat
    camera.fovy = CAMERA_FOVY


@functools.cache
def photo_textures() -> dict[str, np.ndarray]:
    """Meta-World's photo textures, resized to ``TEXTURE_SIZE`` squares (uint8 RGB)."""
    from PIL import Image

    import metaworld

    root = Path(metaworld.__file__).parent / "assets"
    photos: dict[str, np.ndarray] = {}
    for path in sorted([*root.glob("textures/*.png"), *root.glob("scene/textures/*.png")]):
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            side = min(rgb.size)
            rgb = rgb.crop((0, 0, side, side)).resize((TEXTURE_SIZE, TEXTURE_SIZE), Image.BILINEAR)
            photos[path.stem] = np.asarray(rgb, np.uint8)
    return photos


def texture_pixels(params: dict[str, Any]) -> np.ndarray:
    """Build the ``[TEXTURE_SIZE, TEXTURE_SIZE, 3]`` uint8 pixels a texture parameter dict names."""
    kind = params["kind"]
    size = TEXTURE_SIZE
    if kind == "photo":
        pixels = photo_textures()[params["name"]].astype(np.float32)
        return np.clip(pixels * np.asarray(params["tint"], np.float32), 0, 255).astype(np.uint8)
    first = np.asarray(params["color1"], np.float32) * 255
    second = np.asarray(params["color2"], np.float32) * 255
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "checker":
        cells = params["cells"]
        weight = ((np.floor(rows * cells) + np.floor(cols * cells)) % 2)[..., None]
    elif kind == "stripes":
        angle = math.radians(params["angle"])
        phase = (rows * math.cos(angle) + cols * math.sin(angle)) * params["cells"]
        weight = (np.floor(phase) % 2)[..., None]
    elif kind == "noise":
        noise_rng = np.random.default_rng(params["seed"])
        coarse = noise_rng.random((params["cells"], params["cells"]), dtype=np.float32)
        repeat = -(-size // params["cells"])
        weight = np.kron(coarse, np.ones((repeat, repeat), np.float32))[:size, :size, None]
        weight = 0.7 * weight + 0.3 * noise_rng.random((size, size, 1), dtype=np.float32)
    elif kind == "gradient":
        weight = rows[..., None]
    elif kind == "plain":
        weight = np.zeros((size, size, 1), np.float32)
    else:
        raise ValueError(f"unknown texture kind {kind!r}")
    return np.clip(first * (1 - weight) + second * weight, 0, 255).astype(np.uint8)


def sample_randomization(rng: np.random.Generator, config: RandomizationConfig) -> dict[str, Any]:
    """Draw one episode's randomization parameters (JSON-able) from ``rng``.

    The same generator state always gives the same dict, whatever the task.
    """
    if config.max_distractors > DISTRACTOR_POOL:
        raise LampError(f"max_distractors must be at most {DISTRACTOR_POOL}, got {config.max_distractors}")

    def color(low: float = 0.0, high: float = 1.0) -> list[float]:
        return [round(float(value), 4) for value in rng.uniform(low, high, 3)]

    params: dict[str, Any] = {}
    if config.textures:
        photos = sorted(photo_textures())
        textures = {}
        for surface in SURFACES:
            if rng.random() < 0.5:
                textures[surface] = {
                    "kind": "photo",
                    "name": photos[int(rng.integers(len(photos)))],
                    "tint": color(0.6, 1.2),
                }
            else:
                textures[surface] = {
                    "kind": PROCEDURAL_KINDS[int(rng.integers(len(PROCEDURAL_KINDS)))],
                    "color1": color(),
                    "color2": color(),
                    "cells": int(rng.integers(2, 12)),
                    "angle": round(float(rng.uniform(0, 180)), 2),
                    "seed": int(rng.integers(2**31)),
                }
        params["textures"] = textures
    if config.colors:
        params["colors"] = {"robot": color(0.15, 1.0), "objects": [color(0.05, 1.0) for _ in range(8)]}
    if config.lighting:
        params["lighting"] = {
            "intensity": round(float(rng.uniform(0.5, 1.5)), 4),
            "tint": color(0.75, 1.0),
            "direction_jitter": [round(float(value), 4) for value in rng.uniform(-0.5, 0.5, 3)],
            "ambient": round(float(rng.uniform(0.15, 0.55)), 4),
        }
    if config.camera_jitter > 0:
        jitter = config.camera_jitter
        params["camera"] = {
            "position": [round(float(value), 5) for value in rng.uniform(-jitter, jitter, 3)],
            "lookat": [round(float(value), 5) for value in rng.uniform(-jitter, jitter, 3)],
            "fovy": round(float(CAMERA_FOVY + rng.uniform(-100 * jitter, 100 * jitter)), 4),
        }
    if config.max_distractors > 0:
        count = int(rng.integers(0, config.max_distractors + 1))
        kinds = sorted(_DISTRACTOR_TYPES)
        distractors = []
        for _ in range(count):
            side = 1.0 if rng.random() < 0.5 else -1.0
            size = [round(float(value), 4) for value in rng.uniform(0.015, 0.04, 3)]
            distractors.append(
                {
                    "shape": kinds[int(rng.integers(len(kinds)))],
                    "position": [
                        round(float(side * rng.uniform(0.22, 0.5)), 4),
                        round(float(rng.uniform(0.45, 0.85)), 4),
                        size[2],
                    ],
                    "size": size,
                    "rgba": [*color(), 1.0],
                }
            )
        params["distractors"] = distractors
    return params


@dataclass
class SceneRandomizer:
    """Writes randomization parameters into one compiled, augmented model in place.

    Built once per model; remembers the original values so an empty parameter dict (the
    canonical mode) restores the scene exactly.
    """

    model: mujoco.MjModel
    texture_ids: dict[str, int] = field(init=False)
    material_ids: dict[str, int] = field(init=False)
    camera_id: int = field(init=False)

    def __post_init__(self) -> None:
        model = self.model
        self.texture_ids = {s: model.texture(f"lamp_tex_{s}").id for s in SURFACES}
        self.material_ids = {s: model.material(f"lamp_mat_{s}").id for s in SURFACES}
        self.camera_id = model.camera(CAMERA_NAME).id
        self.distractor_ids = [model.geom(f"lamp_distractor{i}").id for i in range(DISTRACTOR_POOL)]
        body_names = [model.body(i).name for i in range(model.nbody)]
        robot_root = body_names.index(_ROBOT_ROOT)
        robot_bodies = {i for i in range(model.nbody) if self._descends_from(i, robot_root)}
        table_bodies = {body_names.index(name) for name in _TABLE_BODIES if name in body_names}
        wall_bodies = {body_names.index(name) for name in _WALL_BODIES if name in body_names}
        mocap_bodies = {i for i in range(model.nbody) if model.body_mocapid[i] >= 0}
        ours = {*self.distractor_ids, model.geom("lamp_backdrop").id, model.geom(GOAL_MARKER_NAME).id}
        visible = [
            g for g in range(model.ngeom) if model.geom_group[g] in (0, 1, 2) and g not in ours
        ]
        self.surface_geoms = {
            "table": [g for g in visible if model.geom_bodyid[g] in table_bodies],
            "floor": [model.geom("floor").id],
            "wall": [g for g in visible if model.geom_bodyid[g] in wall_bodies]
            + [model.geom("lamp_backdrop").id],
        }
        self.robot_geoms = [g for g in visible if model.geom_bodyid[g] in robot_bodies]
        object_bodies = sorted(
            {
                int(model.geom_bodyid[g])
                for g in visible
                if model.geom_bodyid[g] not in robot_bodies | table_bodies | wall_bodies | mocap_bodies
                and model.geom_bodyid[g] != 0
            }
        )
        self.object_geoms = [
            [g for g in visible if model.geom_bodyid[g] == body] for body in object_bodies
        ]
        self._original = {
            "geom_matid": model.geom_matid.copy(),
            "geom_rgba": model.geom_rgba.copy(),
            "mat_rgba": model.mat_rgba.copy(),
            "light_diffuse": model.light_diffuse.copy(),
            "light_specular": model.light_specular.copy(),
            "light_dir": model.light_dir.copy(),
            "headlight_ambient": model.vis.headlight.ambient.copy(),
            "cam_pos": model.cam_pos[self.camera_id].copy(),
            "cam_quat": model.cam_quat[self.camera_id].copy(),
            "cam_fovy": float(model.cam_fovy[self.camera_id]),
            "distractor_type": model.geom_type[self.distractor_ids].copy(),
            "distractor_size": model.geom_size[self.distractor_ids].copy(),
            "distractor_pos": model.geom_pos[self.distractor_ids].copy(),
        }

    def _descends_from(self, body: int, root: int) -> bool:
        while body != 0:
            if body == root:
                return True
            body = int(self.model.body_parentid[body])
        return False

    def _restore(self) -> None:
        model, original = self.model, self._original
        model.geom_matid[:] = original["geom_matid"]
        model.geom_rgba[:] = original["geom_rgba"]
        model.mat_rgba[:] = original["mat_rgba"]
        model.light_diffuse[:] = original["light_diffuse"]
        model.light_specular[:] = original["light_specular"]
        model.light_dir[:] = original["light_dir"]
        model.vis.headlight.ambient[:] = original["headlight_ambient"]
        model.cam_pos[self.camera_id] = original["cam_pos"]
        model.cam_quat[self.camera_id] = original["cam_quat"]
        model.cam_fovy[self.camera_id] = original["cam_fovy"]
        model.geom_type[self.distractor_ids] = original["distractor_type"]
        model.geom_size[self.distractor_ids] = original["distractor_size"]
        model.geom_pos[self.distractor_ids] = original["distractor_pos"]

    def _tint(self, geoms: list[int], rgb: list[float]) -> None:
        model = self.model
        for geom in geoms:
            material = model.geom_matid[geom]
            if material >= 0:
                model.mat_rgba[material, :3] = rgb
            model.geom_rgba[geom, :3] = rgb

    def apply(self, params: dict[str, Any], context: mujoco.MjrContext | None) -> bool:
        """Write ``params`` into the model; upload changed textures to ``context`` if given.

        Returns:
            Whether the backdrop wall should be shown (only with random textures).
        """
        model = self.model
        self._restore()
        for surface, texture in params.get("textures", {}).items():
            texture_id = self.texture_ids[surface]
            start = model.tex_adr[texture_id]
            pixels = texture_pixels(texture)
            model.tex_data[start : start + pixels.size] = pixels.ravel()
            if context is not None:
                mujoco.mjr_uploadTexture(model, context, texture_id)
            for geom in self.surface_geoms[surface]:
                model.geom_matid[geom] = self.material_ids[surface]
                model.geom_rgba[geom] = (1.0, 1.0, 1.0, 1.0)
        colors = params.get("colors")
        if colors:
            self._tint(self.robot_geoms, colors["robot"])
            for index, geoms in enumerate(self.object_geoms):
                self._tint(geoms, colors["objects"][index % len(colors["objects"])])
        lighting = params.get("lighting")
        if lighting:
            tint = np.asarray(lighting["tint"]) * lighting["intensity"]
            model.light_diffuse[:] = self._original["light_diffuse"] * tint
            model.light_specular[:] = self._original["light_specular"] * tint
            directions = self._original["light_dir"] + np.asarray(lighting["direction_jitter"])
            model.light_dir[:] = directions / np.linalg.norm(directions, axis=1, keepdims=True)
            model.vis.headlight.ambient[:] = lighting["ambient"]
        camera = params.get("camera")
        if camera:
            position, quat = camera_pose(
                np.asarray(CAMERA_LOOKAT) + camera["lookat"], CAMERA_DISTANCE, CAMERA_AZIMUTH, CAMERA_ELEVATION
            )
            model.cam_pos[self.camera_id] = position + np.asarray(camera["position"])
            model.cam_quat[self.camera_id] = quat
            model.cam_fovy[self.camera_id] = camera["fovy"]
        for geom, distractor in zip(self.distractor_ids, params.get("distractors", [])):
            model.geom_type[geom] = _DISTRACTOR_TYPES[distractor["shape"]]
            model.geom_size[geom] = distractor["size"]
            model.geom_pos[geom] = distractor["position"]
            model.geom_rgba[geom] = distractor["rgba"]
        return "textures" in params
