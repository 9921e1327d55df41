"""A realistic demo data set (`puja seed-demo`), recorded through the same commands as the API: several
provinces, innovations of every form, replications in every status and a second-generation lineage."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from domain.acting import Actor, acting_as
from domain.calendar import today
from domain.evaluation import EvaluationInput
from service.network import InnovationNetwork


def _ago(days: int) -> date:
    return today() - timedelta(days=days)


GOOD_PRACTICE = {
    "regulasi": 3,
    "sdm": 2,
    "anggaran": 2,
    "alat_kerja": 3,
    "bimtek": 2,
    "rkpd": 2,
    "keterlibatan_aktor": 2,
    "pelaksana": 3,
    "jejaring": 2,
    "sosialisasi": 3,
    "pedoman_teknis": 2,
    "informasi_layanan": 3,
    "kecepatan_hasil": 2,
    "pengaduan": 2,
    "layanan_terintegrasi": 2,
    "kecepatan_penciptaan": 2,
    "kemanfaatan": 3,
    "monev": 2,
    "video": 1,
}
EARLY_TRIAL = {"regulasi": 1, "sdm": 1, "anggaran": 1, "alat_kerja": 2, "sosialisasi": 1, "monev": 1}


def seed(network: InnovationNetwork) -> dict[str, Any]:
    year = today().year
    with acting_as(Actor("seed-demo", "admin", f"seed-{uuid.uuid4().hex[:8]}")):
        ssw = network.register_innovation(
            region="35.78",
            name="Surabaya Single Window",
            form="pelayanan_publik",
            urusan=["penanaman_modal", "komunikasi_informatika"],
            initiator="kepala_daerah",
            stage="penerapan",
            digital=True,
            started_on=_ago(900),
            description="One online window for every business and building permit of the city.",
            objectives="Faster, transparent licensing.",
            benefits="Permits in days instead of weeks.",
            outcomes="Most permits issued online.",
        ).aggregate
        command_center = network.register_innovation(
            region="32.73",
            name="Bandung Command Center",
            form="tata_kelola",
            urusan=["komunikasi_informatika", "ketenteraman_ketertiban_perlindungan_masyarakat"],
            initiator="kepala_daerah",
            stage="uji_coba",
            digital=True,
            started_on=_ago(800),
            description="A city dashboard joining CCTV, complaints and agency data for quick decisions.",
        ).aggregate
        network.advance_innovation_stage(command_center.id, "penerapan", _ago(700))
        village_health = network.register_innovation(
            region="73.02",
            name="Pelayanan Kesehatan Terpadu Desa",
            form="urusan_pemerintahan",
            urusan=["kesehatan"],
            initiator="perangkat_daerah",
            stage="penerapan",
            digital=False,
            started_on=_ago(850),
            description="Integrated village health posts run with the puskesmas.",
        ).aggregate
        tax_system = network.register_innovation(
            region="51.03",
            name="Sistem Informasi Pajak Daerah",
            form="tata_kelola",
            urusan=["penanaman_modal"],
            initiator="asn",
            stage="inisiatif",
            digital=True,
            started_on=_ago(300),
            description="Self-assessment of local taxes with online payment.",
        ).aggregate
        network.advance_innovation_stage(tax_system.id, "uji_coba", _ago(200))
        network.register_innovation(
            region="35.04",
            name="Posyandu Remaja",
            form="pelayanan_publik",
            urusan=["kesehatan", "sosial"],
            initiator="masyarakat",
            stage="inisiatif",
            digital=False,
            started_on=_ago(120),
            description="Monthly health and counselling sessions for teenagers in every village.",
        )
        market = network.register_innovation(
            region="33.72",
            name="Pasar Rakyat Digital",
            form="urusan_pemerintahan",
            urusan=["perdagangan"],
            initiator="perangkat_daerah",
            stage="penerapan",
            digital=True,
            started_on=_ago(1000),
            description="Traditional market traders selling through a city marketplace.",
        ).aggregate
        network.retire_innovation(market.id, "Replaced by a provincial marketplace.", _ago(60))

        network.evaluate_innovation(ssw.id, EvaluationInput(year, GOOD_PRACTICE, _ago(20), {}))

        # Kota Malang copies the Surabaya Single Window all the way to penerapan.
        malang = network.propose_replication(
            innovation_id=ssw.id,
            adopting_region="35.73",
            facilitator="35",
            rationale="Licensing backlog; same business profile as Surabaya.",
            proposed_on=_ago(600),
        ).aggregate
        network.sign_agreement(malang.id, document="pks", document_number="PKS/031/2024", signed_on=_ago(580))
        network.record_modification(
            malang.id,
            component="teknologi",
            nature="penyesuaian",
            core=False,
            description="Hosted on the provincial data centre.",
            reason="No own data centre.",
            recorded_on=_ago(570),
        )
        network.record_modification(
            malang.id,
            component="regulasi",
            nature="penggantian",
            core=True,
            description="Perwali instead of the Surabaya regulation.",
            reason="Local legal basis.",
            recorded_on=_ago(560),
        )
        network.advance_adoption(
            malang.id, stage="uji_coba", effective_on=_ago(500), legal_basis="Perwali Malang No. 12/2024"
        )
        network.advance_adoption(
            malang.id,
            stage="penerapan",
            effective_on=_ago(400),
            legal_basis="Perwali Malang No. 40/2024",
            evidence_urls=["https://example.go.id/malang/ssw"],
        )
        network.evaluate_replication(malang.id, EvaluationInput(year, GOOD_PRACTICE, _ago(30), {}))

        # Kabupaten Blitar too, directly from Surabaya.
        blitar = network.propose_replication(
            innovation_id=ssw.id,
            adopting_region="35.05",
            rationale="Neighbouring investment growth.",
            proposed_on=_ago(450),
        ).aggregate
        network.sign_agreement(blitar.id, document="mou", document_number="MOU/7/2025", signed_on=_ago(440))
        network.advance_adoption(blitar.id, stage="uji_coba", effective_on=_ago(300))
        network.advance_adoption(blitar.id, stage="penerapan", effective_on=_ago(200))

        # Second generation: Kota Makassar learns it from Kota Malang.
        makassar = network.propose_replication(
            innovation_id=ssw.id,
            adopting_region="73.71",
            source_region="35.73",
            facilitator="Kementerian Dalam Negeri",
            rationale="Study visit to Malang.",
            proposed_on=_ago(150),
        ).aggregate
        network.sign_agreement(
            makassar.id, document="pks", document_number="PKS/88/2025", signed_on=_ago(140)
        )
        network.advance_adoption(makassar.id, stage="uji_coba", effective_on=_ago(90))
        network.evaluate_replication(makassar.id, EvaluationInput(year, EARLY_TRIAL, _ago(10), {}))

        denpasar = network.propose_replication(
            innovation_id=command_center.id,
            adopting_region="51.71",
            rationale="Tourism-season crowd control.",
            proposed_on=_ago(100),
        ).aggregate
        network.sign_agreement(
            denpasar.id, document="surat_pernyataan", document_number="SP/2/2025", signed_on=_ago(80)
        )

        kab_bandung = network.propose_replication(
            innovation_id=command_center.id,
            adopting_region="32.04",
            rationale="Shared metropolitan area.",
            proposed_on=_ago(250),
        ).aggregate
        network.reject_replication(
            kab_bandung.id, reason="The kabupaten joins the provincial centre instead.", rejected_on=_ago(230)
        )

        network.propose_replication(
            innovation_id=village_health.id,
            adopting_region="32.01",
            rationale="Remote villages in the south.",
            proposed_on=_ago(15),
        )

        semarang = network.propose_replication(
            innovation_id=village_health.id,
            adopting_region="33.74",
            rationale="Urban kampung health posts.",
            proposed_on=_ago(500),
        ).aggregate
        network.sign_agreement(semarang.id, document="pks", document_number="PKS/5/2024", signed_on=_ago(480))
        network.advance_adoption(semarang.id, stage="uji_coba", effective_on=_ago(420))
        network.discontinue_replication(
            semarang.id, reason="Budget reallocated after the trial.", effective_on=_ago(300)
        )
    return {
        "innovations": 6,
        "replications": 7,
        "head_position": network.head_position(),
    }
