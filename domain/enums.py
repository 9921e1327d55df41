"""Enumerations of domain.md, stored and sent as these exact lowercase values."""

from __future__ import annotations

from enum import StrEnum


class Form(StrEnum):
    """Bentuk inovasi daerah (PP 38/2017 Art. 4)."""

    TATA_KELOLA = "tata_kelola"
    PELAYANAN_PUBLIK = "pelayanan_publik"
    URUSAN_PEMERINTAHAN = "urusan_pemerintahan"


class Initiator(StrEnum):
    """Inisiator inovasi daerah."""

    KEPALA_DAERAH = "kepala_daerah"
    ANGGOTA_DPRD = "anggota_dprd"
    ASN = "asn"
    PERANGKAT_DAERAH = "perangkat_daerah"
    MASYARAKAT = "masyarakat"


class InnovationStage(StrEnum):
    """Tahapan inovasi daerah; they only move forward."""

    INISIATIF = "inisiatif"
    UJI_COBA = "uji_coba"
    PENERAPAN = "penerapan"

    @property
    def rank(self) -> int:
        return list(InnovationStage).index(self)


URUSAN_GROUPS: dict[str, tuple[str, ...]] = {
    "wajib_pelayanan_dasar": (
        "pendidikan",
        "kesehatan",
        "pekerjaan_umum_penataan_ruang",
        "perumahan_kawasan_permukiman",
        "ketenteraman_ketertiban_perlindungan_masyarakat",
        "sosial",
    ),
    "wajib_non_pelayanan_dasar": (
        "tenaga_kerja",
        "pemberdayaan_perempuan_perlindungan_anak",
        "pangan",
        "pertanahan",
        "lingkungan_hidup",
        "administrasi_kependudukan_pencatatan_sipil",
        "pemberdayaan_masyarakat_desa",
        "pengendalian_penduduk_keluarga_berencana",
        "perhubungan",
        "komunikasi_informatika",
        "koperasi_usaha_kecil_menengah",
        "penanaman_modal",
        "kepemudaan_olahraga",
        "statistik",
        "persandian",
        "kebudayaan",
        "perpustakaan",
        "kearsipan",
    ),
    "pilihan": (
        "kelautan_perikanan",
        "pariwisata",
        "pertanian",
        "kehutanan",
        "energi_sumber_daya_mineral",
        "perdagangan",
        "perindustrian",
        "transmigrasi",
    ),
}

Urusan = StrEnum(  # type: ignore[misc]
    "Urusan",
    [(value.upper(), value) for group in URUSAN_GROUPS.values() for value in group],
)
Urusan.__doc__ = "Urusan pemerintahan (UU 23/2014 Art. 12), 32 values in three groups."


def urusan_group(urusan: str) -> str:
    for group, values in URUSAN_GROUPS.items():
        if urusan in values:
            return group
    raise KeyError(urusan)


class ReplicationStatus(StrEnum):
    DIUSULKAN = "diusulkan"
    DISEPAKATI = "disepakati"
    UJI_COBA = "uji_coba"
    PENERAPAN = "penerapan"
    DITOLAK = "ditolak"
    DIHENTIKAN = "dihentikan"

    @property
    def is_terminal(self) -> bool:
        return self in (ReplicationStatus.DITOLAK, ReplicationStatus.DIHENTIKAN)

    @property
    def is_open(self) -> bool:
        return not self.is_terminal


class AdoptionStage(StrEnum):
    """The two adoption steps an adopting region records."""

    UJI_COBA = "uji_coba"
    PENERAPAN = "penerapan"


class AgreementDocument(StrEnum):
    PKS = "pks"
    MOU = "mou"
    SURAT_PERNYATAAN = "surat_pernyataan"


class ModificationComponent(StrEnum):
    PROSES_BISNIS = "proses_bisnis"
    TEKNOLOGI = "teknologi"
    REGULASI = "regulasi"
    KELEMBAGAAN = "kelembagaan"
    SASARAN = "sasaran"
    PEMBIAYAAN = "pembiayaan"
    SDM = "sdm"
    NAMA = "nama"
    LAINNYA = "lainnya"


class ModificationNature(StrEnum):
    PENAMBAHAN = "penambahan"
    PENGURANGAN = "pengurangan"
    PENYESUAIAN = "penyesuaian"
    PENGGANTIAN = "penggantian"


class Role(StrEnum):
    """Roles of API tokens (api.md)."""

    ADMIN = "admin"
    OPERATOR = "operator"
    EVALUATOR = "evaluator"
    AUDITOR = "auditor"
    INTEGRATOR = "integrator"
