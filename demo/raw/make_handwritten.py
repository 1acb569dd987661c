# ruff: noqa: E501  -- the table below is prose data; wrapping every sentence would hurt more than help
"""Regenerates the hand-written demo raw files (MedChatZH, huatuo_encyclopedia_qa, HuatuoGPT-sft-data-v1,
CMtMedQA train, webMedQA) in their upstream layouts from the small table below.

No real file of these is redistributable or reachable offline, so they are written by us; the text is ordinary
health advice, not copied from the datasets. The CMtMedQA test file is different: it is real (see README.md).
Run from the repo root: `python demo/raw/make_handwritten.py`. Output is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (department, condition, symptom question, answer, follow-up question, follow-up answer)
TABLE: list[tuple[str, str, str, str, str, str]] = [
    (
        "内科",
        "感冒",
        "感冒了一直流鼻涕，喉咙痛，需要吃抗生素吗？",
        "普通感冒多由病毒引起，抗生素无效。多喝水、注意休息，症状明显时可用对症药物缓解，一般一周左右自愈。",
        "要是发烧到38.5度以上呢？",
        "体温超过38.5℃可以服用布洛芬或对乙酰氨基酚退热；若高热持续三天不退或出现呼吸困难，应及时就医。",
    ),
    (
        "内科",
        "高血压",
        "体检发现血压145/95，需要马上吃降压药吗？",
        "单次测量偏高不能确诊，建议非同日测量三次。先从低盐饮食、减重、规律运动做起，仍不达标再在医生指导下用药。",
        "平时饮食要注意什么？",
        "每天食盐不超过5克，少吃腌制食品，多吃蔬菜水果，限制饮酒，戒烟。",
    ),
    (
        "内科",
        "糖尿病",
        "空腹血糖7.2是糖尿病吗？",
        "空腹血糖≥7.0 mmol/L需要另一天复查，或做糖耐量试验和糖化血红蛋白检查才能确诊。",
        "确诊后一定要打胰岛素吗？",
        "2型糖尿病多数先用生活方式干预和口服药，是否需要胰岛素要看血糖水平和胰岛功能，由内分泌科医生决定。",
    ),
    (
        "消化内科",
        "胃炎",
        "最近总是胃胀、反酸，吃完饭更明显，是胃炎吗？",
        "有可能是慢性胃炎或胃食管反流。建议少食多餐，避免辛辣油腻和浓茶咖啡，症状持续可做胃镜检查。",
        "需要查幽门螺杆菌吗？",
        "需要。幽门螺杆菌感染是慢性胃炎的常见原因，可做碳13或碳14呼气试验，阳性者应规范根除治疗。",
    ),
    (
        "儿科",
        "小儿腹泻",
        "宝宝一岁，拉肚子一天五六次，水样便，怎么办？",
        "首先要预防脱水，可以口服补液盐，少量多次喂。继续母乳或平时饮食，暂停果汁。如果精神差、尿少或便中带血，应立即就医。",
        "可以吃蒙脱石散吗？",
        "可以按说明书剂量服用蒙脱石散，与其他药物间隔1到2小时服用。",
    ),
    (
        "儿科",
        "小儿发热",
        "孩子三岁，晚上发烧39度，要不要去医院？",
        "先用退热药（布洛芬或对乙酰氨基酚）并适当减少衣物。如果精神状态好可以在家观察；出现抽搐、嗜睡、持续高热超过72小时应就医。",
        "可以用酒精擦身体降温吗？",
        "不建议用酒精擦浴，儿童皮肤会吸收酒精，可能引起中毒，可以用温水擦浴。",
    ),
    (
        "皮肤科",
        "湿疹",
        "手上反复起小水泡，很痒，是湿疹吗？",
        "可能是汗疱疹或手部湿疹。注意减少接触洗涤剂，勤涂保湿霜，瘙痒明显时可短期外用弱效激素药膏。",
        "激素药膏会不会有副作用？",
        "短期、小面积、按医嘱使用弱效激素是安全的，长期大面积使用才可能出现皮肤变薄等副作用。",
    ),
    (
        "皮肤科",
        "痤疮",
        "脸上长了很多粉刺和痘痘，怎么治疗？",
        "轻度痤疮可外用维A酸类或过氧苯甲酰，中重度需要在皮肤科医生指导下加用口服药物。不要用手挤压。",
        "饮食需要忌口吗？",
        "建议少吃高糖食物和乳制品，保持规律作息，避免熬夜。",
    ),
    (
        "妇产科",
        "月经不调",
        "月经推迟了十天还没来，没有怀孕，正常吗？",
        "偶尔推迟一周左右可能与情绪、作息、体重变化有关。若连续三个月不规律，建议查性激素六项和妇科超声。",
        "需要吃药调理吗？",
        "要先明确原因，如多囊卵巢综合征、甲状腺问题等，再针对性治疗，不建议自行服用激素。",
    ),
    (
        "妇产科",
        "孕期贫血",
        "怀孕20周，血红蛋白95，需要补铁吗？",
        "孕期血红蛋白低于110 g/L属于贫血，95需要补铁治疗，可在医生指导下服用铁剂，同时多吃红肉、动物肝脏。",
        "铁剂吃了便秘怎么办？",
        "可以多吃富含膳食纤维的食物、多喝水，必要时换用其他剂型的铁剂。",
    ),
    (
        "外科",
        "腰椎间盘突出",
        "腰疼还放射到腿上，是不是腰椎间盘突出？",
        "腰痛伴下肢放射痛是腰椎间盘突出的典型表现，建议做腰椎核磁共振明确诊断。急性期以卧床休息和药物止痛为主。",
        "需要做手术吗？",
        "大多数患者保守治疗有效，只有出现大小便障碍、肌力明显下降或保守治疗三个月无效时才考虑手术。",
    ),
    (
        "外科",
        "痔疮",
        "大便时出血，鲜红色，是痔疮吗？",
        "便后滴血或手纸带鲜血多见于内痔，但也要排除肛裂和肠道肿瘤，40岁以上建议做肠镜检查。",
        "平时怎么预防？",
        "多吃蔬菜水果，多喝水，避免久坐久蹲，养成定时排便的习惯。",
    ),
    (
        "五官科",
        "过敏性鼻炎",
        "一到春天就鼻痒、打喷嚏、流清涕，怎么办？",
        "这是典型的季节性过敏性鼻炎。可以使用鼻用激素喷剂和口服抗组胺药，尽量减少花粉接触，外出戴口罩。",
        "能根治吗？",
        "过敏性鼻炎难以根治，但可以通过规范用药控制症状，部分患者可以考虑脱敏治疗。",
    ),
    (
        "五官科",
        "中耳炎",
        "孩子耳朵疼，还有点发烧，是中耳炎吗？",
        "感冒后出现耳痛、发热，要考虑急性中耳炎，需要到耳鼻喉科检查鼓膜，必要时使用抗生素。",
        "会影响听力吗？",
        "及时规范治疗一般不影响听力，反复发作或积液长期不吸收可能影响听力，需要复查。",
    ),
    (
        "心理科",
        "失眠",
        "最近压力大，晚上躺两三个小时才睡着，怎么办？",
        "建议固定起床时间，睡前一小时不看手机，避免午后喝咖啡和浓茶。持续一个月以上可以到睡眠门诊就诊。",
        "可以吃安眠药吗？",
        "安眠药需要医生开具处方，短期使用，不宜自行长期服用，以免产生依赖。",
    ),
    (
        "心理科",
        "焦虑",
        "总是心慌、紧张，担心各种事情，是焦虑症吗？",
        "持续半年以上的过度担忧并伴有心慌、坐立不安，需要考虑焦虑障碍，建议到心理科或精神科评估。",
        "除了吃药还有什么办法？",
        "认知行为治疗、规律运动、放松训练都有帮助，可以和药物治疗结合。",
    ),
    (
        "中医科",
        "脾胃虚弱",
        "吃一点凉的就拉肚子，中医说是脾胃虚弱，怎么调理？",
        "饮食宜温热易消化，少吃生冷，可适量食用山药、小米粥。具体用药需要中医辨证后开方。",
        "可以艾灸吗？",
        "可以在专业人员指导下艾灸足三里、中脘等穴位，注意避免烫伤。",
    ),
    (
        "肿瘤科",
        "甲状腺结节",
        "体检发现甲状腺结节4毫米，TI-RADS 3类，要紧吗？",
        "3类结节多为良性，恶性风险很低，一般建议6到12个月复查一次超声即可，不需要手术。",
        "饮食上要少吃碘吗？",
        "一般正常饮食即可，无需刻意忌碘，合并甲亢时才需要限制碘摄入。",
    ),
    (
        "传染病科",
        "乙肝",
        "乙肝小三阳，肝功能正常，需要治疗吗？",
        "需要查乙肝病毒DNA定量和肝脏超声。如果病毒量低、肝功能正常，可以定期随访，每半年复查一次。",
        "会传染给家人吗？",
        "乙肝主要经血液、母婴和性接触传播，日常吃饭、握手不会传染，家人可以接种乙肝疫苗。",
    ),
    (
        "男科",
        "前列腺炎",
        "小便频繁，尿不尽，是前列腺炎吗？",
        "尿频、尿不尽可能与前列腺炎或前列腺增生有关，建议查尿常规、前列腺超声，必要时做前列腺液检查。",
        "平时需要注意什么？",
        "避免久坐和憋尿，少饮酒、少吃辛辣，适当运动，保持规律生活。",
    ),
    (
        "内科",
        "缺铁性贫血",
        "经常头晕乏力，查出来是缺铁性贫血，怎么补？",
        "在医生指导下口服铁剂，同时多吃红肉、动物血和肝脏，配合维生素C促进吸收，并要查找缺铁的原因。",
        "要补多久？",
        "血红蛋白恢复正常后还需要继续补铁3到6个月，以补足体内储存铁。",
    ),
    (
        "内科",
        "痛风",
        "大脚趾突然红肿热痛，尿酸520，是痛风吗？",
        "急性发作的第一跖趾关节红肿热痛，加上高尿酸，很符合痛风。急性期可用非甾体抗炎药止痛，多喝水。",
        "以后饮食要注意什么？",
        "少吃动物内脏、海鲜和浓肉汤，戒啤酒，少喝含糖饮料，每天饮水2000毫升以上。",
    ),
    (
        "眼科",
        "干眼症",
        "眼睛干涩，看电脑久了更严重，怎么办？",
        "这是常见的干眼症状。注意每用眼40分钟休息一下，多眨眼，可以使用不含防腐剂的人工泪液。",
        "需要去医院检查吗？",
        "如果伴有明显眼红、眼痛或视力下降，应到眼科检查泪液分泌和角膜情况。",
    ),
    (
        "口腔科",
        "牙龈出血",
        "刷牙时牙龈经常出血，是什么原因？",
        "最常见的原因是牙龈炎，与牙结石和刷牙不到位有关。建议洗牙，并用巴氏刷牙法，配合牙线清洁。",
        "洗牙会伤牙齿吗？",
        "规范的洗牙不会损伤牙齿，洗牙后短期牙齿敏感是正常现象。",
    ),
    (
        "内分泌科",
        "甲亢",
        "心跳快、怕热、体重下降，查出甲亢，要怎么治？",
        "甲亢的治疗有抗甲状腺药物、放射性碘和手术三种，多数人先用药物治疗，需要定期复查甲功和血常规。",
        "治疗期间能运动吗？",
        "病情未控制时应避免剧烈运动，以免加重心脏负担，甲功正常后可逐渐恢复运动。",
    ),
    (
        "呼吸内科",
        "哮喘",
        "一闻到油烟就咳嗽、胸闷喘不上气，是哮喘吗？",
        "接触刺激物后出现咳嗽、胸闷、喘息，要考虑支气管哮喘，建议做肺功能和支气管舒张试验。",
        "吸入激素安全吗？",
        "吸入激素剂量小、主要作用于气道，规范使用是安全的，是控制哮喘的基础用药。",
    ),
    (
        "骨科",
        "骨质疏松",
        "60岁，骨密度T值-2.8，该怎么办？",
        "T值≤-2.5可诊断骨质疏松。需要补充钙和维生素D，在医生指导下使用抗骨质疏松药物，并注意防跌倒。",
        "喝骨头汤能补钙吗？",
        "骨头汤含钙很少、脂肪较多，补钙效果不好，建议喝牛奶、吃豆制品。",
    ),
    (
        "神经内科",
        "偏头痛",
        "经常一侧头痛，一跳一跳的，还怕光，是偏头痛吗？",
        "单侧搏动性头痛伴畏光，符合偏头痛特点。发作时可在安静暗室休息，服用止痛药；发作频繁需要预防用药。",
        "有哪些诱因要避免？",
        "常见诱因有睡眠不规律、饥饿、饮酒、巧克力和强光刺激，记录头痛日记有助于找出诱因。",
    ),
    (
        "泌尿外科",
        "肾结石",
        "突然腰疼得厉害，还有血尿，是肾结石吗？",
        "突发的腰部绞痛伴血尿，高度怀疑泌尿系结石，应去急诊做B超或CT，疼痛剧烈时需要解痉止痛。",
        "小结石能自己排出来吗？",
        "直径小于6毫米的结石多数可以通过多喝水、适当跳跃运动自行排出，较大的结石需要碎石治疗。",
    ),
    (
        "营养科",
        "减肥",
        "BMI 28，想减肥，每天吃多少合适？",
        "一般建议在原来基础上每天减少500千卡左右，保证蛋白质摄入，配合每周150分钟中等强度运动。",
        "不吃晚饭可以吗？",
        "不建议完全不吃晚饭，容易导致暴饮暴食，可以晚餐清淡、减少主食。",
    ),
]

DRUGS: list[tuple[str, str]] = [
    ("布洛芬缓释胶囊", "口服。成人一次1粒，一日2次(早晚各一次)。"),
    ("阿莫西林胶囊", "口服。成人一次0.5g，每6~8小时1次，一日剂量不超过4g。"),
    ("奥美拉唑肠溶胶囊", "口服，不可咀嚼。一次20mg，一日1~2次，晨起吞服或早晚各一次。"),
    ("氯雷他定片", "口服。成人及12岁以上儿童：一日1次，一次1片(10mg)。"),
    ("二甲双胍片", "口服。从小剂量开始，一次0.25g，一日2~3次，随餐服用，以后根据血糖调整。"),
    ("硝苯地平控释片", "口服。一次30mg，一日1次，整片吞服，不可掰开或嚼碎。"),
    ("蒙脱石散", "口服。成人一次1袋，一日3次，倒入50毫升温水中摇匀后服用。"),
    ("维生素D滴剂", "口服。一次1粒，一日1次，可直接滴入口中。"),
]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def medchatzh() -> None:
    rows = []
    for _dept, cond, q, a, _fq, _fa in TABLE:
        rows.append({"instruction": f"{cond}怎么办？{q}", "input": "", "output": a})
    # Upstream quirks: an empty answer, and a numbered list whose "1." was lost by a sentence splitter.
    rows.insert(5, {"instruction": "血hcg阴性会宫外孕吗", "input": "", "output": ""})
    rows.insert(
        9,
        {
            "instruction": "静脉曲张如何治疗？静脉曲张，治疗",
            "input": "",
            "output": "应避免长时间站立，适当抬高下肢。\n2. 弹力支持：穿医用弹力袜。\n3. 严重者到血管外科评估手术治疗。",
        },
    )
    rows = rows[:25]
    rows.append(dict(rows[0]))  # an exact duplicate line, dropped by the converter
    _jsonl(HERE / "MedChatZH/MedChatZH_train.json", rows)
    valid = [
        {"instruction": f"{d}常见问题：{c}有什么症状？", "input": "", "output": f"{c}的表现因人而异。{a}"}
        for d, c, _q, a, _fq, _fa in TABLE[24:]
    ]
    _jsonl(HERE / "MedChatZH/MedChatZH_valid.json", valid)


def encyclopedia() -> None:
    train = []
    for name, usage in DRUGS:
        train.append(
            {
                "questions": [[f"{name}的用法用量", f"{name}怎么吃"]],
                "answers": [f"注意:同种药品可由于不同的包装规格有不同的用法或用量。本文只供参考。{usage}"],
            }
        )
    for _d, cond, _q, a, _fq, fa in TABLE[:20]:
        train.append({"questions": [[f"{cond}的治疗方法有哪些"]], "answers": [f"{a}<br>{fa}"]})
    # Same question as a test item up to punctuation: the converter drops it from train (`in_test`).
    train.append({"questions": [["痛风应该挂什么科？"]], "answers": ["痛风可以挂风湿免疫科或内分泌科。"]})
    _jsonl(HERE / "huatuo_encyclopedia_qa/train_datasets.jsonl", train)
    test = [{"questions": [[f"{c}应该挂什么科"]], "answers": [f"{c}一般可以挂{d}。"]} for d, c, *_ in TABLE[20:26]]
    _jsonl(HERE / "huatuo_encyclopedia_qa/test_datasets.jsonl", test)


def huatuo_sft() -> None:
    rows = []
    for i, (_d, cond, q, a, fq, fa) in enumerate(TABLE[8:28]):
        if i % 3 == 0:
            data = [f"问：{q}\n", f"答：{a}"]
        elif i % 3 == 1:
            data = [f"问：{q}\n", f"答：{a}", f"问：{fq}\n", f"答：{fa}"]
        else:  # HuatuoGPT's trainer drops a dangling last question like this one
            data = [f"问：{q}\n", f"答：{a}", f"问：{cond}会遗传吗？\n"]
        rows.append({"data": data})
    _jsonl(HERE / "HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl", rows)


def cmtmedqa_train() -> None:
    rows = []
    for i, (dept, cond, q, a, fq, fa) in enumerate(TABLE[:16]):
        rows.append(
            {
                "id": f"{'jx'[i % 2]}{1000 + i * 37}",
                "cate1": "nan" if i == 3 else dept,
                "cate2": cond,
                "instruction": "好的，谢谢医生！",
                "input": "",
                "output": "不客气，祝您早日康复！",
                "history": [[f"医生您好，{q}", a], [fq, fa]],
            }
        )
    path = HERE / "CMtMedQA/CMtMedQA.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Upstream layout: 4-space indented array, no trailing newline.
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=4), encoding="utf-8")


def webmedqa() -> None:
    def lines(rows: list[tuple], start: int) -> str:
        out = []
        for k, (dept, _cond, q, a, _fq, _fa) in enumerate(rows):
            qid = str(start + k)
            negatives = [rows[(k + j) % len(rows)][3] for j in (1, 2, 3, 4)]
            # Two positives repeat a HuatuoGPT pair verbatim: the cross-source exact-duplicate filter drops them.
            answers = [("1", a if k < 2 else f"您好，{a}")] + [("0", n) for n in negatives]
            # The positive answer sits at a different position among the five lines of each question.
            answers = answers[k % 5 :] + answers[: k % 5]
            out += [f"{dept}\t{label}\t{qid}\t{q}\t{ans}\n" for label, ans in answers]
        return "".join(out)

    (HERE / "webMedQA").mkdir(parents=True, exist_ok=True)
    (HERE / "webMedQA/medQA.train.txt").write_text(lines(TABLE[10:30], 21166878), encoding="utf-8")
    (HERE / "webMedQA/medQA.test.txt").write_text(lines(TABLE[:6], 30000001), encoding="utf-8")


if __name__ == "__main__":
    medchatzh()
    encyclopedia()
    huatuo_sft()
    cmtmedqa_train()
    webmedqa()
